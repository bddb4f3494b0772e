"""Is the store's schema what this function was built for? Checked once per process, never changed from here.

Migrations and indexes are a deploy step (`make migrate` locally, the shop-migrate Job on a cluster): a request
never runs DDL. A function whose store is behind answers 503 naming that step, and checks again on the next
request, so it serves as soon as the step has run, without a restart.
"""

from __future__ import annotations

from shared.errors import ServiceUnavailable

MIGRATE_STEP = "run `make migrate` locally, or the shop-migrate Job on the cluster (knative/migrate/)"
MONGO_MARKERS = "schema_versions"  # one document per component: {_id: component, version: n}

_mongo_ready: set[tuple[str, int]] = set()


class SchemaBehind(ServiceUnavailable):
    """The store lacks a migration or index this function needs: the deploy's migration step has not run."""

    def __init__(self, what: str):
        super().__init__(f"The store's schema is behind this function ({what}): {MIGRATE_STEP}", retry_after=30)


async def require_mongo(component: str, version: int) -> None:
    """Raise SchemaBehind unless the migration step recorded `component` at `version` or later (one read per
    process once it has)."""
    if (component, version) in _mongo_ready:
        return
    from shared.mongo import collection

    marker = await collection(MONGO_MARKERS).find_one({"_id": component})
    found = marker["version"] if marker else None
    if found is None or found < version:
        raise SchemaBehind(f"{component} indexes at version {found or 'none'}, {version} needed")
    _mongo_ready.add((component, version))


def missing_migrations(applied: set[str], expected: list[str]) -> list[str]:
    """The expected migration versions the database has not recorded, in order."""
    return [version for version in expected if version not in applied]
