"""`make token USER=alice [ROLE=admin]`: print a bearer token signed with the local (or configured) secret."""

from __future__ import annotations

import argparse

from local.config import local_setting
from shared.auth import issue_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", required=True)
    parser.add_argument("--role", choices=["customer", "admin"], default="customer")
    parser.add_argument("--ttl", type=int, default=24 * 3600, help="seconds until the token expires")
    options = parser.parse_args()
    print(issue_token(options.user, options.role, options.ttl, secret=local_setting("SHOP_JWT_SECRET")))


if __name__ == "__main__":
    main()
