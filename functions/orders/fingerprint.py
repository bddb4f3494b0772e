"""The keyed fingerprint of an order request (it covers the card number): computed by the function that takes
orders, the only one that reads the card-fingerprint key (the relay and admin functions import the service, not this)."""

import hashlib
import hmac

from functions.orders.models import CreateOrder
from shared.settings import CardFingerprintSettings, settings


def keyed_fingerprint(cmd: CreateOrder) -> str:
    # Keyed, so the stored fingerprint of a card number cannot be brute-forced without the secret.
    secret = settings(CardFingerprintSettings).card_fingerprint_key.get_secret_value().encode()
    return hmac.new(secret, cmd.fingerprint().encode(), hashlib.sha256).hexdigest()
