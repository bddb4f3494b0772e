"""The key pairs of a local shop: one Ed25519 key per function, and the key of the local event issuer (the runner
plays the broker and the PingSources). Made fresh for every run, never committed: `make up` keeps its set under
.local/run/keys/ (readable by this user only) so tools can sign tokens; tests hold theirs in memory.

    python -m local.service_keys token <caller> <target>    # a service token from .local/run/keys, for curl
    python -m local.service_keys compose-env > local/.env  # a fresh key set for docker compose
    python -m local.service_keys kubernetes | kubectl apply -n shop -f -  # and for a cluster: never commit it
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.routes import ROUTES, Route
from shared.service_identity import SERVICE_ALGORITHM
from shared.service_tokens import TOKEN_SECONDS

EVENTING = "eventing"  # the local event issuer's key, beside the functions' keys
LOCAL_EVENTING_ISSUER = "https://local-runner.shop.invalid/eventing"
EVENTING_KEY_ID = "local-eventing"
KEYS_DIR_SETTING = "LOCAL_KEYS_DIR"  # in a LocalShop's settings: the key set its functions get keys from


def new_private_pem(curve: str = "ed25519") -> str:
    key = Ed25519PrivateKey.generate() if curve == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class KeySet:
    private: dict[str, str] = field(default_factory=dict)  # function name (or EVENTING) -> private key, PEM

    @classmethod
    def generate(cls, routes: tuple[Route, ...] = ROUTES) -> KeySet:
        return cls({**{route.name: new_private_pem() for route in routes}, EVENTING: new_private_pem("p256")})

    @classmethod
    def load(cls, directory: Path) -> KeySet:
        return cls({path.stem: path.read_text() for path in sorted(directory.glob("*.pem"))})

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, pem in self.private.items():
            path = directory / f"{name}.pem"
            path.touch(mode=0o600)
            path.write_text(pem)
        return directory

    def private_key(self, name: str) -> str:
        if name not in self.private:  # a function outside the route table (benchmarks, tests): a key of its own
            self.private[name] = new_private_pem()
        return self.private[name]

    def public_key(self, name: str) -> str:
        return public_pem(self.private_key(name))

    def service_token(self, caller: str, audience: str, ttl_seconds: int = TOKEN_SECONDS) -> str:
        """What function `caller` sends to `audience` (shared.service_tokens), signed with its key."""
        now = int(time.time())
        return jwt.encode({"iss": caller, "sub": caller, "aud": audience, "iat": now, "exp": now + ttl_seconds},
                          self.private_key(caller), algorithm=SERVICE_ALGORITHM)

    def sender_token(self, subject: str, audience: str, ttl_seconds: int = 600) -> str:
        """An event sender token as Knative Eventing's OIDC feature issues one: this run's issuer stands in for
        the cluster's ServiceAccount issuer."""
        now = int(time.time())
        return jwt.encode({"iss": LOCAL_EVENTING_ISSUER, "sub": subject, "aud": audience, "iat": now,
                           "exp": now + ttl_seconds},
                          self.private[EVENTING], algorithm="ES256", headers={"kid": EVENTING_KEY_ID})

    def eventing_jwks(self) -> str:
        public = serialization.load_pem_private_key(self.private[EVENTING].encode(), password=None).public_key()
        key = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
        return json.dumps({"keys": [{**key, "kid": EVENTING_KEY_ID, "use": "sig", "alg": "ES256"}]})


@lru_cache(maxsize=None)
def _loaded(directory: str) -> KeySet:
    return KeySet.load(Path(directory))


@lru_cache(maxsize=1)
def process_keys() -> KeySet:
    """The key set of every local shop this process starts without a key directory (tests, benchmarks)."""
    return KeySet.generate()


def keys_for(settings: dict[str, str]) -> KeySet:
    """The key set a LocalShop's settings name, else this process's own."""
    directory = settings.get(KEYS_DIR_SETTING)
    return _loaded(directory) if directory else process_keys()


def key_variable(name: str, public: bool = False) -> str:
    """The variable docker-compose reads a key from (local/.env, written by `compose-env`)."""
    return f"SHOP_{'PUBLIC_' if public else ''}KEY_" + name.upper().replace("-", "_")


def compose_env(keys: KeySet) -> str:
    """A docker-compose .env file holding a fresh key set (double-quoted values take \\n and \\" escapes)."""
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = [f"{key_variable(name)}={quoted(pem)}" for name, pem in keys.private.items()]
    lines += [f"{key_variable(name, public=True)}={quoted(keys.public_key(name))}" for name in keys.private]
    lines.append(f"SHOP_EVENTING_JWKS={quoted(keys.eventing_jwks())}")
    return "\n".join(lines) + "\n"


def kubernetes_objects(keys: KeySet, namespace: str = "shop") -> list[dict]:
    """What a cluster needs of a fresh key set: the private key of each function that signs in a Secret of its own
    (only its pod mounts it), and every public key in one ConfigMap (a target's env names only its callers')."""
    from local.deploy.knative import SERVICE_KEYS, service_key_secret
    from local.environment import SERVICE_KEY, function_secrets

    functions = [route.name for route in ROUTES]
    signers = [route.name for route in ROUTES if SERVICE_KEY in function_secrets(route)]
    secrets = [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": service_key_secret(name), "namespace": namespace},
                "stringData": {"private.pem": keys.private_key(name)}} for name in signers]
    public = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SERVICE_KEYS, "namespace": namespace},
              "data": {f"{name}.pem": keys.public_key(name) for name in functions}}
    return [*secrets, public]


def main(argv: list[str]) -> int:
    from local.config import LOCAL_DIR

    if argv[:1] == ["token"] and len(argv) == 3:
        print(KeySet.load(LOCAL_DIR / "run" / "keys").service_token(argv[1], argv[2]))  # local.run's KEYS_DIR
    elif argv == ["compose-env"]:
        print(compose_env(KeySet.generate()), end="")
    elif argv == ["kubernetes"]:
        import yaml

        print(yaml.safe_dump_all(kubernetes_objects(KeySet.generate()), sort_keys=False), end="")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def allowed_caller_headers(name: str, settings: dict[str, str] | None = None) -> dict[str, str]:
    """What an allowed caller of function `name` sends it: its first listed caller's service token, or the sender
    token of the broker or PingSource delivering to it; nothing for a public route (tests, benchmarks, probes)."""
    from local.environment import sender_token
    from shared.routes import route as route_named
    from shared.service_identity import SERVICE_TOKEN_HEADER, function_callers, needs_service_token

    target = route_named(name)
    if target.signature == "cloudevent":
        return {"Authorization": f"Bearer {sender_token(settings or {}, target)}"}
    if needs_service_token(target):
        caller = function_callers(target)[0]
        return {SERVICE_TOKEN_HEADER: keys_for(settings or {}).service_token(caller, name)}
    return {}
