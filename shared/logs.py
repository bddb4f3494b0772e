"""Structured JSON logs, one object per line, each carrying the current request id.

Every line passes through `redact` before it is written: no call site has to remember it. It removes the values
pydantic puts in its errors (`input_value=...`), URL passwords, every secret registered with `never_log` (the
settings register theirs when read), and masks e-mail addresses, E.164 phone numbers and card numbers.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import re
import sys
import time

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_secret_forms: tuple[str, ...] = ()  # each secret raw and JSON-escaped, longest first; replaced, never changed
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]|$)", re.MULTILINE)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@\"']*):[^\s@/\"']*@", re.IGNORECASE)
_EMAIL = re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")
_PHONE = re.compile(r"\+(\d{2})\d{4,11}(\d{2})\b")
_MAYBE_CARD = re.compile(r"\d{4}[ -]?\d{4}[ -]?\d{4}")  # a cheap first look: most lines hold no such run
_CARD = re.compile(r"(?<![\d-])(?:\d{12,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?)(?![\d-])")


def never_log(*values: object) -> None:
    """Remember secret values (a password, a signing key) so that no log line ever shows them."""
    global _secret_forms
    forms = set(_secret_forms)
    for value in values:
        if isinstance(value, str) and len(value) >= 4:
            forms |= {value, json.dumps(value)[1:-1]}
    _secret_forms = tuple(sorted(forms, key=len, reverse=True))


def mask_recipient(recipient: str) -> str:
    """`a***@example.com` for an e-mail, `+33******78` for a phone number, `***` for anything else."""
    if "@" in recipient:
        local, _, domain = recipient.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if recipient.startswith("+") and recipient[1:].isdigit() and len(recipient) > 5:
        return recipient[:3] + "*" * (len(recipient) - 5) + recipient[-2:]
    return "***"


def fingerprint(text: str) -> str:
    """A short digest of a text that must not be logged (a message body): equal texts can still be matched."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def redact(text: str) -> str:
    """The text with secrets removed and personal data masked (see the module docstring).

    Each rule first looks for what it needs (an `@`, a `+`, a run of digits): a line with none costs a few µs."""
    for form in _secret_forms:
        if form in text:
            text = text.replace(form, "[secret]")
    if "input_value=" in text:
        text = _INPUT_VALUE.sub("input_value=[hidden]", text)
    if "@" in text:
        text = _EMAIL.sub(r"\1***@\2", _URL_PASSWORD.sub(r"\1:[secret]@", text))
    if "+" in text:
        text = _PHONE.sub(lambda found: f"+{found[1]}{'*' * (len(found[0]) - 5)}{found[2]}", text)
    return _CARD.sub(_mask_card, text) if _MAYBE_CARD.search(text) else text


def _mask_card(found: re.Match) -> str:
    digits = [int(d) for d in found[0] if d.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return f"[card ...{found[0][-4:]}]" if checksum % 10 == 0 else found[0]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "function": os.environ.get("K_SERVICE") or os.environ.get("FUNCTION_TARGET"),
            "request_id": request_id.get(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def logger(name: str) -> logging.Logger:
    """A logger that writes JSON lines to stdout; configured once per process.

    The root logger gets the same handler when it has none, so what libraries log (functions-framework's
    tracebacks of a failed event, say) is redacted too."""
    root = logging.getLogger("shop")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
        root.propagate = False
        if not logging.getLogger().handlers:
            logging.getLogger().addHandler(handler)
    return root.getChild(name)
