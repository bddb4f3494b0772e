"""`make migrate`: apply the versioned SQL migrations to DATABASE_URL (functions also do this on first use)."""

from __future__ import annotations

import os

from local.config import local_setting
from local.stores import ensure_postgres


def main() -> None:
    os.environ.setdefault("DATABASE_URL", local_setting("DATABASE_URL"))
    ensure_postgres(os.environ["DATABASE_URL"])
    from shared.postgres import Pool, migrate

    # Unnamed statements only: right whether DATABASE_URL is PostgreSQL or a transaction-pooling PgBouncer.
    applied = migrate(Pool(os.environ["DATABASE_URL"], timeout=10, pooler="transaction"))
    print(f"migrations: {', '.join(applied) if applied else 'already up to date'}")


if __name__ == "__main__":
    main()
