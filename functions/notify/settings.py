"""How long a claimed delivery stays claimed (read like shared/settings.py's classes, through `settings()`)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class DeliverySettings(Settings):
    # A row left in 'sending' for longer than this belongs to a dead instance: the next delivery sends again.
    # Keep it above the longest send (the aws backend gives up after its connect and read timeouts).
    notify_send_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
