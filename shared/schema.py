"""Is the store's schema what this function was built for? Checked once per process, never changed from here.

Migrations and indexes are a deploy step (`make migrate` locally, the shop-migrate Job on a cluster): a request
never runs DDL. A function whose store is behind answers 503 naming that step, and checks again on the next
request, so it serves as soon as the step has run, without a restart.
"""

from __future__ import annotations

from shared.errors import ServiceUnavailable

MIGRATE_STEP = "run `make migrate` locally, or the shop-migrate Job on the cluster (knative/migrate/)"


class SchemaBehind(ServiceUnavailable):
    """The store lacks a migration or index this function needs: the deploy's migration step has not run."""

    def __init__(self, what: str):
        super().__init__(f"The store's schema is behind this function ({what}): {MIGRATE_STEP}", retry_after=30)


def missing_migrations(applied: set[str], expected: list[str]) -> list[str]:
    """The expected migration versions the database has not recorded, in order."""
    return [version for version in expected if version not in applied]
