"""Checkout crash tests again, with every PostgreSQL connection through a real PgBouncer in transaction pooling:
leases, recovery points and the sweep (FOR UPDATE SKIP LOCKED) keep no state in a session. A subset, to keep the
suite short: the sweep resolving a crash after each step, and a retry meeting a key still held."""

from __future__ import annotations

from tests.functions.test_checkout_crashes import (  # noqa: F401 - fixtures and tests collected again here
    faulty,
    relay,
    test_a_crash_between_saga_steps_without_a_retry_is_resolved_by_the_sweep,
    test_a_retry_while_the_first_request_still_holds_the_key_is_told_to_retry_soon,
)
from tests.stores.through_pgbouncer import gateway, shop  # noqa: F401 - the pooled shop for every test here
