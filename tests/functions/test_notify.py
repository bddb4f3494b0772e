"""The notify functions: CloudEvent deliveries deduplicated by the ledger, the admin API, and the SES/SNS backend."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import httpx
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends
from pg8000.exceptions import DatabaseError

from local.processes import free_port
from shared.postgres import Pool, connect, migrate
from tests.support import ADMIN, assert_problem, bearer, function_alone, sender_headers, unique

REGION = "eu-west-1"
SENDER = "shop@example.com"


def order_event_data(order_id=None, **contact):
    return {"order_id": order_id or str(uuid.uuid4()), "user_id": "alice", "status": "paid", "currency": "EUR",
            "total_price": "30.00", "contact": contact,
            "items": [{"product_sku": "LAMP-1", "product_name": "Lamp", "quantity": 2, "price_at_purchase": "15.00",
                       "line_total": "30.00", "currency": "EUR"}]}


def deliver(url, data, event_id=None, event_type="com.example.shop.order.created", source="/orders", timeout=10):
    headers = {"ce-specversion": "1.0", "ce-id": event_id or str(uuid.uuid4()), "ce-source": source,
               "ce-type": event_type, "ce-subject": "order", "content-type": "application/json",
               **sender_headers("notify-order-created")}
    return httpx.post(url, headers=headers, json=data, timeout=timeout)


@pytest.fixture(scope="module")
def notify_url(shop):
    return shop.functions["notify-order-created"].url


def ledger(gateway, **params):
    response = gateway.get("/notifications", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def notifications_logged(shop, event_id) -> int:
    """How many messages the shop's notify-order-created sent for the event `event_id` (the log backend logs each
    one, with the event id as its request id and the recipient masked)."""
    log = (shop.log_dir / "notify-order-created.log").read_text()
    return sum(1 for line in log.splitlines()
               if '"message": "notification sent"' in line and f'"request_id": "{event_id}"' in line)


@pytest.fixture(scope="module")
def db(shop, postgres_url):
    migrate(Pool(postgres_url, timeout=5))
    connection = connect(postgres_url, timeout=5)
    yield connection
    connection.close()


def claimed_by_another_instance(db, data, event_id, seconds_ago):
    """The ledger row another notify instance left in 'sending' (still sending, or dead) `seconds_ago`."""
    db.run("INSERT INTO notifications (id, source, event_id, order_id, channel, backend, recipient, subject, body, "
           "status, attempts, updated_at) VALUES (:id, '/orders', :event_id, :order_id, 'email', 'log', :recipient, "
           "'s', 'b', 'sending', 1, now() - :seconds * interval '1 second')", id=uuid.uuid4(), event_id=event_id,
           order_id=data["order_id"], recipient=data["contact"]["email"], seconds=seconds_ago)


def test_the_same_event_delivered_three_times_notifies_once(gateway, notify_url):
    data, event_id = order_event_data(email="alice@example.com"), str(uuid.uuid4())

    statuses = [deliver(notify_url, data, event_id).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    entries = ledger(gateway, order_id=data["order_id"])
    assert entries["total"] == 1
    assert (entries["items"][0]["status"], entries["items"][0]["attempts"]) == ("sent", 1)
    assert entries["items"][0]["event_id"] == event_id


def test_a_delivery_left_sending_by_a_dead_instance_is_sent_on_redelivery(gateway, shop, notify_url, db):
    recipient, event_id = f"{unique('erin')}@example.com", str(uuid.uuid4())
    data = order_event_data(email=recipient)
    claimed_by_another_instance(db, data, event_id, seconds_ago=3600)  # it died between claim and record

    assert deliver(notify_url, data, event_id).status_code == 200

    [entry] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (entry["status"], entry["attempts"]) == ("sent", 2)
    assert notifications_logged(shop, event_id) == 1


def test_a_duplicate_of_a_delivery_in_flight_answers_5xx_and_sends_nothing(gateway, shop, notify_url, db):
    recipient, event_id = f"{unique('fay')}@example.com", str(uuid.uuid4())
    data = order_event_data(email=recipient)
    claimed_by_another_instance(db, data, event_id, seconds_ago=0)

    response = deliver(notify_url, data, event_id)

    assert response.status_code == 503  # 5xx, not 4xx: the broker retries it instead of dead-lettering it
    assert response.headers["retry-after"] == "30"  # NOTIFY_SEND_LEASE_SECONDS: when the claim may be taken over
    [entry] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (entry["status"], entry["attempts"]) == ("sending", 1)
    assert notifications_logged(shop, event_id) == 0


def test_a_claim_older_than_the_lease_setting_is_taken_over(gateway, shop, db):
    data, event_id = order_event_data(email=f"{unique('gus')}@example.com"), str(uuid.uuid4())
    with function_alone("notify-order-created", {**shop.settings, "NOTIFY_SEND_LEASE_SECONDS": "2"}) as notifier:
        claimed_by_another_instance(db, data, event_id, seconds_ago=0)
        within_the_lease = deliver(notifier.url, data, event_id)
        time.sleep(2.1)
        after_the_lease = deliver(notifier.url, data, event_id)

    assert within_the_lease.status_code == 503
    assert after_the_lease.status_code == 200
    [entry] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (entry["status"], entry["attempts"]) == ("sent", 2)


def test_an_order_without_contact_is_logged_for_the_user(gateway, notify_url):
    data = order_event_data()

    assert deliver(notify_url, data).status_code == 200

    [entry] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (entry["channel"], entry["recipient"], entry["backend"]) == ("log", "user:alice", "log")


@pytest.mark.parametrize("data, event_type", [
    ({"order_id": "nope"}, "com.example.shop.order.created"),
    (order_event_data() | {"items": []}, "com.example.shop.order.created"),
    (order_event_data(), "com.example.shop.something.else"),
])
def test_permanently_bad_events_are_rejected_for_the_dead_letter_sink(gateway, notify_url, data, event_type):
    event_id = str(uuid.uuid4())

    response = deliver(notify_url, data, event_id, event_type)

    assert response.status_code == 422  # 4xx the broker does not retry (not 404, 408, 409, 429)
    [entry] = [item for item in ledger(gateway, status="rejected", limit=100)["items"] if item["event_id"] == event_id]
    assert entry["last_error"]


def test_a_request_that_is_not_a_cloudevent_is_a_client_error(notify_url):
    assert httpx.post(notify_url, json={"hello": "world"}, headers=sender_headers("notify-order-created")).status_code == 400


def test_admins_send_email_from_a_template(gateway):
    recipient = f"{unique('bob')}@example.com"

    response = gateway.post("/notifications", json={"type": "email", "recipient": recipient, "template_id": "welcome",
                                                    "context": {"name": "Bob"}}, headers=ADMIN)

    assert response.status_code == 202, response.text
    [entry] = ledger(gateway, recipient=recipient)["items"]
    assert entry["id"] == response.json()["id"]
    assert (entry["status"], entry["subject"], entry["source"]) == ("sent", "Welcome to the shop, Bob", "/notifications")


def test_admins_send_sms_with_a_body(gateway):
    response = gateway.post("/notifications", json={"type": "sms", "recipient": "+33612345678", "body": "Hello"},
                            headers=ADMIN)

    assert response.status_code == 202


@pytest.mark.parametrize("body", [
    {"type": "email", "recipient": "not-an-address", "subject": "s", "body": "b"},
    {"type": "email", "recipient": "a@example.com", "body": "no subject"},
    {"type": "sms", "recipient": "0612345678", "body": "b"},
    {"type": "sms", "recipient": "+33612345678"},
    {"type": "fax", "recipient": "+33612345678", "body": "b"},
    {"type": "email", "recipient": "a@example.com", "template_id": "no-such-template"},
    {"type": "email", "recipient": "a@example.com", "template_id": "welcome", "context": {}},
    {"type": "email", "recipient": "a@example.com", "subject": "s", "body": "b", "cc": "x@example.com"},
])
def test_invalid_notification_requests_are_rejected(gateway, body):
    assert_problem(gateway.post("/notifications", json=body, headers=ADMIN), 422)


def test_the_notification_api_is_for_admins(gateway):
    body = {"type": "sms", "recipient": "+33612345678", "body": "b"}

    assert_problem(gateway.post("/notifications", json=body), 401)
    assert_problem(gateway.post("/notifications", json=body, headers=bearer("alice")), 403)
    assert_problem(gateway.get("/notifications", headers=bearer("alice")), 403)
    assert_problem(gateway.get("/notifications", params={"order_id": "x"}, headers=ADMIN), 422)


def sends_logged(shop, request_id) -> int:
    """How many messages the shop's notify-send-notification sent for requests with this X-Request-Id."""
    log = (shop.log_dir / "notify-send-notification.log").read_text()
    return sum(1 for line in log.splitlines()
               if '"message": "notification sent"' in line and f'"request_id": "{request_id}"' in line)


def keyed_send(url_or_gateway, body, key, request_id, admin=ADMIN):
    headers = {**admin, "Idempotency-Key": key, "X-Request-Id": request_id}
    if isinstance(url_or_gateway, str):
        return httpx.post(f"{url_or_gateway}/notifications", json=body, headers=headers, timeout=10)
    return url_or_gateway.post("/notifications", json=body, headers=headers)


def test_a_keyed_notification_is_sent_once_however_often_it_is_requested(gateway, shop):
    body, request_id = {"type": "sms", "recipient": "+33612345678", "body": "Your parcel left"}, unique("keyed")

    key = unique("parcel")
    first, again = (keyed_send(gateway, body, key, request_id) for _ in range(2))

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert sends_logged(shop, request_id) == 1
    entries = ledger(gateway, recipient=body["recipient"])["items"]
    [entry] = [item for item in entries if item["id"] == first.json()["id"]]
    assert entry["source"] == "/notifications/keyed"  # a source of its own: no event's (source, id) names this row
    assert entry["event_id"].endswith(f" {key}") and "ops" not in entry["event_id"]  # the admin's id, hashed


def test_an_idempotency_key_names_one_message_of_one_admin(gateway, shop):
    body, request_id = {"type": "sms", "recipient": "+33612345679", "body": "Hello"}, unique("keyed")
    key = unique("hello")
    first = keyed_send(gateway, body, key, request_id)

    reused = keyed_send(gateway, body | {"body": "Hello again"}, key, request_id)
    other_admin = keyed_send(gateway, body, key, request_id, admin=bearer("ops-2", "admin"))

    assert first.status_code == 202
    assert assert_problem(reused, 422)["errors"][0]["type"] == "idempotency_key_reused"
    assert other_admin.status_code == 202 and other_admin.json()["id"] != first.json()["id"]
    assert sends_logged(shop, request_id) == 2


def test_a_malformed_idempotency_key_on_a_notification_is_bad_request_and_sends_nothing(gateway, shop):
    request_id = unique("keyed")

    response = keyed_send(gateway, {"type": "sms", "recipient": "+33612345670", "body": "b"}, "x" * 65, request_id)

    assert assert_problem(response, 400)["errors"][0]["field"] == "header.Idempotency-Key"
    assert sends_logged(shop, request_id) == 0


def test_a_keyed_notification_retried_while_its_first_send_may_be_going_out_sends_nothing(shop, tmp_path):
    body = {"type": "sms", "recipient": "+33612345671", "body": "b"}
    request_id, key = unique("keyed"), unique("crashed")
    settings = {**shop.settings, "SHOP_TEST_FAULTS": "notify.after-send=crash"}
    with function_alone("notify-send-notification", settings, log=tmp_path / "dying.log") as dying:
        with pytest.raises(httpx.TransportError):  # SIGKILLed after the send, before it is recorded
            keyed_send(dying.url, body, key, request_id)

    retry = keyed_send(shop.functions["notify-send-notification"].url, body, key, request_id)
    short_lease = {**shop.settings, "NOTIFY_SEND_LEASE_SECONDS": "1"}
    with function_alone("notify-send-notification", short_lease, log=tmp_path / "later.log") as later:
        time.sleep(1.2)
        after_the_lease = keyed_send(later.url, body, key, request_id)

    assert_problem(retry, 503)
    assert retry.headers["retry-after"]  # the lease: never two sends of one key at the same time
    assert sends_logged(shop, request_id) == 0  # the dying instance logged to its own file
    assert after_the_lease.status_code == 202  # the dead instance's claim is taken over: sent (at least once)
    assert (tmp_path / "later.log").read_text().count('"message": "notification sent"') == 1


@pytest.fixture(scope="module")
def moto_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client("ses", region_name=REGION, endpoint_url=url, aws_access_key_id="test",
                 aws_secret_access_key="test").verify_email_identity(EmailAddress=SENDER)
    yield url
    server.stop()


def aws_settings(shop, endpoint):
    return {**shop.settings, "NOTIFY_BACKEND": "aws", "NOTIFY_EMAIL_FROM": SENDER, "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_MAX_ATTEMPTS": "1", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "0"}


@pytest.fixture
def aws_notifier(shop, moto_url):
    with function_alone("notify-order-created", aws_settings(shop, moto_url)) as notifier:
        yield notifier.url


def test_the_aws_backend_sends_email_through_ses(gateway, aws_notifier):
    data = order_event_data(email="carol@example.com")

    assert deliver(aws_notifier, data).status_code == 200

    sent = [m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages if "carol@example.com" in m.destinations["ToAddresses"]]
    assert len(sent) == 1
    assert sent[0].subject == f"Your order {data['order_id']} is confirmed"
    assert "2 x Lamp (LAMP-1): 30.00" in sent[0].body and "Total: 30.00 EUR" in sent[0].body
    assert ledger(gateway, order_id=data["order_id"])["items"][0]["backend"] == "aws"


def test_the_aws_backend_sends_sms_through_sns(aws_notifier):
    data = order_event_data(phone="+14155550123")

    assert deliver(aws_notifier, data).status_code == 200

    texts = [message for phone, message in sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values()
             if phone == "+14155550123"]
    assert len(texts) == 1 and data["order_id"] in texts[0]


def test_a_transient_send_failure_fails_the_delivery_and_a_retry_sends(gateway, shop, aws_notifier):
    data, event_id = order_event_data(email="dave@example.com"), str(uuid.uuid4())
    with function_alone("notify-order-created", aws_settings(shop, f"http://127.0.0.1:{free_port()}")) as broken:
        first = deliver(broken.url, data, event_id)

    assert first.status_code >= 500
    assert ledger(gateway, order_id=data["order_id"])["items"][0]["status"] == "failed"
    assert deliver(aws_notifier, data, event_id).status_code == 200
    [entry] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (entry["status"], entry["attempts"]) == ("sent", 2)


def test_a_keyed_notification_the_channel_refused_is_refused_again_and_not_sent_again(gateway, shop, moto_url):
    unverified = {**aws_settings(shop, moto_url), "NOTIFY_EMAIL_FROM": "nobody-verified@example.org"}
    body = {"type": "email", "recipient": f"{unique('erin')}@example.com", "subject": "s", "body": "b"}
    with function_alone("notify-send-notification", unverified) as sender:
        key = unique("refused")
        first, again = (keyed_send(sender.url, body, key, unique("keyed")) for _ in range(2))

    assert assert_problem(first, 422)["notification_id"] == assert_problem(again, 422)["notification_id"]
    [entry] = ledger(gateway, recipient=body["recipient"])["items"]
    assert (entry["status"], entry["attempts"]) == ("rejected", 1)


class SesThatLooksAtTheLedger(BaseHTTPRequestHandler):
    """An SES endpoint that, while a message is being sent, checks from its own connection that the ledger row is
    committed as 'sending' and that no transaction of the notify function is open (then accepts the message)."""

    postgres_url: str
    recipient: str
    seen: list[dict]

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.seen.append(self.ledger_during_the_send())
        body = (b'<SendEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><SendEmailResult>'
                b'<MessageId>fake-1</MessageId></SendEmailResult><ResponseMetadata><RequestId>fake-request'
                b'</RequestId></ResponseMetadata></SendEmailResponse>')
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def ledger_during_the_send(self) -> dict:
        connection = connect(self.postgres_url, timeout=5)
        try:
            open_transactions = connection.run(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state LIKE 'idle in transaction%' AND query ILIKE '%notifications%'")[0][0]
            connection.run("BEGIN")
            try:
                # NOWAIT: fails at once if the notify function still held the row locked while sending.
                statuses = connection.run("SELECT status FROM notifications WHERE recipient = :recipient FOR UPDATE "
                                          "NOWAIT", recipient=self.recipient)
                locked = False
            except DatabaseError:  # lock not available
                statuses, locked = [], True
            connection.run("ROLLBACK")
            return {"statuses": [row[0] for row in statuses], "locked": locked, "open_transactions": open_transactions}
        finally:
            connection.close()

    def log_message(self, *args):
        pass


def test_the_message_is_sent_with_the_claim_committed_and_no_transaction_open(gateway, shop, postgres_url, db):
    recipient = f"{unique('hana')}@example.com"
    data, seen = order_event_data(email=recipient), []
    handler = type("Ses", (SesThatLooksAtTheLedger,), {"postgres_url": postgres_url, "seen": seen,
                                                       "recipient": recipient})
    ses = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=ses.serve_forever, daemon=True).start()
    settings = aws_settings(shop, f"http://127.0.0.1:{ses.server_port}")
    try:
        with function_alone("notify-order-created", settings) as notifier:
            response = deliver(notifier.url, data)
    finally:
        ses.shutdown()

    assert response.status_code == 200, response.text
    assert seen == [{"statuses": ["sending"], "locked": False, "open_transactions": 0}]
    assert ledger(gateway, order_id=data["order_id"])["items"][0]["status"] == "sent"


class SesThatNeverAnswers(BaseHTTPRequestHandler):
    """An SES endpoint that takes the message and answers too late: the sender cannot know whether it went out."""

    received: list[float]

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.received.append(time.monotonic())
        time.sleep(7)  # past the backend's 5 s read timeout

    def log_message(self, *args):
        pass


def test_a_send_whose_reply_times_out_is_not_sent_again_by_the_sdk(shop, gateway):
    """botocore would retry a timed-out send (the message may have gone out: a second copy), each attempt up to the
    read timeout, past the ledger's lease. One attempt: the delivery fails, recorded, for the ledger to retry."""
    received = []
    ses = ThreadingHTTPServer(("127.0.0.1", 0), type("Ses", (SesThatNeverAnswers,), {"received": received}))
    ses.daemon_threads, ses.block_on_close = True, False  # its handler still sleeps when the test ends
    threading.Thread(target=ses.serve_forever, daemon=True).start()
    settings = {**aws_settings(shop, f"http://127.0.0.1:{ses.server_port}")}
    del settings["AWS_MAX_ATTEMPTS"]  # the backend's own configuration, as deployed
    recipient = f"{unique('ivy')}@example.com"
    try:
        with function_alone("notify-send-notification", settings) as sender:
            response = httpx.post(f"{sender.url}/notifications", headers=ADMIN, timeout=60, json={
                "type": "email", "recipient": recipient, "subject": "s", "body": "b"})
    finally:
        ses.shutdown()
        ses.server_close()

    assert_problem(response, 503)
    assert len(received) == 1
    assert ledger(gateway, recipient=recipient)["items"][0]["status"] == "failed"


@pytest.mark.parametrize("locked_seconds, recorded", [(4, "sent"), (12, "sending")])
def test_a_sent_message_the_ledger_cannot_record_is_answered_as_sent_and_not_sent_again(shop, gateway, postgres_url,
                                                                                         tmp_path, locked_seconds,
                                                                                         recorded):
    """Locked 4 s: the first `sent` times out, a retry records it. Locked 12 s: every retry (~2 s of pauses plus a
    1.5 s statement timeout each) times out; answered as sent all the same, the row left `sending`, logged."""
    data, event_id = order_event_data(email=f"{unique('hal')}@example.com"), str(uuid.uuid4())
    log = tmp_path / "notify.log"
    with function_alone("notify-order-created", {**shop.settings, "SHOP_TEST_FAULTS": "notify.after-send=sleep:2"},
                        log=log) as notifier:
        result = {}
        delivering = threading.Thread(target=lambda: result.update(response=deliver(notifier.url, data, event_id, timeout=30)))
        delivering.start()
        blocker = connect(postgres_url, timeout=30)
        try:
            deadline = time.monotonic() + 10
            while not blocker.run("SELECT 1 FROM notifications WHERE event_id = :e AND status = 'sending'",
                                  e=event_id):  # claimed and sent; now it sleeps before recording
                assert time.monotonic() < deadline
                time.sleep(0.02)
            blocker.run("BEGIN")
            blocker.run("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")  # the first `sent` times out behind it
            time.sleep(locked_seconds)
        finally:
            blocker.run("ROLLBACK")
            blocker.close()
        delivering.join(timeout=30)

    assert result["response"].status_code == 200, result["response"].text  # not 5xx: no redelivery, no resend
    [entry] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (entry["status"], entry["attempts"]) == (recorded, 1)
    assert log.read_text().count('"message": "notification sent"') == 1
    assert ("sent but not recorded" in log.read_text()) == (recorded == "sending")
