"""How long a claimed delivery stays claimed (read like shared/settings.py's classes, through `settings()`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # A row left in 'sending' for longer than this belongs to a dead instance: the next delivery sends again.
    # Keep it above the longest send (the aws backend gives up after its connect and read timeouts).
    notify_send_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
