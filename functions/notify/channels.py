"""Where messages go: `log` (one structured log line per message) or `aws` (SES for email, SNS for sms).

The `log` line says that a message went out and to whom, masked (`a***@example.com`), with the body's length and
digest instead of its text: a confirmation names what someone bought.

Chosen by NOTIFY_BACKEND. A backend raises `SendFailed` for a transient failure (the broker retries the event)
and `Undeliverable` for a message that can never be sent (the event goes to the dead-letter sink).
"""

from __future__ import annotations

from functools import lru_cache

from shared.errors import ServiceUnavailable, Unprocessable
from shared.logs import fingerprint, logger, mask_recipient
from shared.settings import NotifySettings, settings

_log = logger("notify")


class SendFailed(ServiceUnavailable):
    pass


class Undeliverable(Unprocessable):
    pass


class LogBackend:
    name = "log"

    def send(self, channel: str, recipient: str, subject: str | None, body: str) -> None:
        _log.info("notification sent", extra={"channel": channel, "recipient": mask_recipient(recipient),
                                              "body_length": len(body), "body_sha256": fingerprint(body)})


class AwsBackend:
    name = "aws"

    def __init__(self, region: str, sender: str):
        import boto3  # only the aws backend pays for importing boto3
        from botocore.config import Config

        # A send must end well within the delivery lease (NOTIFY_SEND_LEASE_SECONDS), or a redelivery sends again;
        # and one attempt only: the SDK's own retry of a send whose reply timed out would send the message twice
        # (a failure is recorded `failed`, and the broker or the caller tries again under the ledger's lease).
        timeouts = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 1})
        self.sender = sender
        self.ses = boto3.client("ses", region_name=region, config=timeouts)
        self.sns = boto3.client("sns", region_name=region, config=timeouts)

    def send(self, channel: str, recipient: str, subject: str | None, body: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if channel == "email":
                self.ses.send_email(Source=self.sender, Destination={"ToAddresses": [recipient]},
                                    Message={"Subject": {"Data": subject or ""}, "Body": {"Text": {"Data": body}}})
            elif channel == "sms":
                self.sns.publish(PhoneNumber=recipient, Message=body)
            else:
                raise Undeliverable(f"The aws backend cannot send over '{channel}': no email or phone is known")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("MessageRejected", "InvalidParameterValue", "InvalidParameter", "MailFromDomainNotVerified"):
                raise Undeliverable(f"AWS refused the message: {code}") from error
            raise SendFailed(f"AWS failed to send: {code or 'error'}") from error
        except BotoCoreError as error:
            raise SendFailed(f"AWS could not be reached: {type(error).__name__}") from error


@lru_cache(maxsize=1)
def backend() -> LogBackend | AwsBackend:
    config = settings(NotifySettings)
    if config.notify_backend == "aws":
        return AwsBackend(config.aws_region, config.notify_email_from)
    return LogBackend()
