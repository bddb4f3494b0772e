"""A function's environment, decided in one place for the local runner, docker-compose and the Knative manifests.

`variables(route)` lists what a function is given: what selects it in the shared image, the addresses of the
functions it calls, the secrets its code reads, its own service key when it calls others, its callers' public
keys, and who may deliver events to it. Each platform only renders where a value comes from (a local value, a
compose interpolation, a Secret or ConfigMap reference).

Minimal secrets, derived rather than listed: a function's secrets are the secret fields (SecretStr, or marked
`SECRET` in shared.settings) of the settings classes that the modules it imports name, following its imports from
its entry file through the project's own modules. A new setting holding a secret reaches exactly the functions
whose code reads it, with no list to edit.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr

from shared.peers import url_variable
from shared.routes import BROKER, PING_SOURCE, ROUTES, Route
from shared.service_identity import caller_key_variable, function_callers, needs_service_token
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("shared", "functions")
# The kustomization's namespace: in-cluster URLs take it from there (local/deploy/knative.py namespace_replacement);
# the event senders' subjects and audiences below name it as generated.
NAMESPACE = "shop"
SERVICE_KEY = "SERVICE_PRIVATE_KEY"
TRIGGER = "notify-order-created"  # the Trigger delivering order events (and dead-lettering them)
PUBLISHED_TO = TRIGGER  # where the local runner's broker hands published events

# Kinds of variable: how each platform finds the value.
LITERAL, SOURCE, PEER, SINK, SECRET, OWN_KEY, CALLER_KEY, SENDER_ISSUER, SENDER_JWKS = (
    "literal", "source", "peer", "sink", "secret", "own-key", "caller-key", "sender-issuer", "sender-jwks")


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str
    value: str = ""  # the literal; the peer or caller it names; the source path


def variables(route: Route) -> list[Variable]:
    """Everything a function is given, besides the platform's own (port, workers) and non-secret configuration."""
    found = [Variable("FUNCTION_SOURCE", SOURCE, route.source),
             Variable("FUNCTION_TARGET", LITERAL, route.target),
             Variable("FUNCTION_SIGNATURE_TYPE", LITERAL, route.signature)]
    found += [Variable(url_variable(peer), PEER, peer) for peer in route.calls]
    if route.publishes:
        found.append(Variable("K_SINK", SINK))
    secrets = function_secrets(route)
    found += [Variable(name, SECRET) for name in sorted(secrets - {SERVICE_KEY})]
    if SERVICE_KEY in secrets:
        found.append(Variable(SERVICE_KEY, OWN_KEY, route.name))
    if needs_service_token(route):
        found += [Variable(caller_key_variable(caller), CALLER_KEY, caller) for caller in function_callers(route)]
    if route.signature == "cloudevent":
        found += [Variable("EVENT_SENDER_ISSUER", SENDER_ISSUER), Variable("EVENT_SENDER_JWKS", SENDER_JWKS),
                  Variable("EVENT_SENDER_SUBJECTS", LITERAL, ",".join(event_senders(route))),
                  Variable("EVENT_AUDIENCE", LITERAL, event_audience(route.name))]
    return found


# Who delivers events, as Knative Eventing's `authentication-oidc` names them.

def oidc_service_account(name: str, group: str, kind: str) -> str:
    """The ServiceAccount Knative Eventing creates for a sender (knative/eventing pkg/auth/serviceaccount.go:
    kmeta.ChildName(name, "-oidc-<group>-<kind>"), lower-cased)."""
    account = f"{name}-oidc-{group}-{kind}".lower()
    if len(account) > 63:  # kmeta.ChildName would hash it; none of ours is that long
        raise ValueError(f"{account} is longer than a Kubernetes name")
    return account


def subject(account: str, namespace: str = NAMESPACE) -> str:
    return f"system:serviceaccount:{namespace}:{account}"


def event_senders(route: Route) -> list[str]:
    """The `sub`s that may deliver events to `route`: its Trigger's, or its PingSource's ServiceAccount."""
    senders = []
    if BROKER in route.callers:
        senders.append(subject(oidc_service_account(TRIGGER, "eventing.knative.dev", "trigger")))
    if PING_SOURCE in route.callers:
        senders.append(subject(oidc_service_account(route.name, "sources.knative.dev", "pingsource")))
    return senders


def event_audience(name: str, namespace: str = NAMESPACE) -> str:
    """The OIDC audience of a consumer, in Knative's form <group>/<kind>/<namespace>/<name> (pkg/auth/audience.go);
    the generated Trigger and PingSources name it explicitly, since a Knative Service announces none."""
    return f"serving.knative.dev/service/{namespace}/{name}"


# Secrets, derived from the code.

def function_secrets(route: Route) -> frozenset[str]:
    """The secret variables the code of `route`'s function reads."""
    return _secrets_of(route.source)


@lru_cache(maxsize=None)
def _secrets_of(source: str) -> frozenset[str]:
    modules = _imported_modules(source)
    named = set().union(*(_names_in(module) for module in modules)) if modules else set()
    secrets: set[str] = set()
    for module in modules | {"shared.settings"}:
        for kind in _settings_classes(module):
            if kind.__name__ in named:
                secrets |= secret_fields(kind)
    return frozenset(secrets)


def all_secrets() -> frozenset[str]:
    """Every secret any function may be given."""
    return frozenset().union(*(function_secrets(route) for route in ROUTES))


def secret_fields(kind: type[Settings]) -> set[str]:
    names = set()
    for name, field in kind.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if field.annotation is SecretStr or SecretStr in getattr(field.annotation, "__args__", ()) or \
                extra.get("secret"):
            names.add(field.validation_alias if isinstance(field.validation_alias, str) else name.upper())
    return names


def _module_path(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module | None:
    path = _module_path(module)
    try:
        return ast.parse(path.read_text()) if path else None
    except SyntaxError:
        return None


def _imported_modules(source: str) -> frozenset[str]:
    """The project modules an entry file imports, directly or through other project modules."""
    entry = source.removesuffix(".py").replace("/", ".")
    seen, todo = set(), [entry]
    while todo:
        module = todo.pop()
        if module in seen or _tree(module) is None:
            continue
        seen.add(module)
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo += [f"{node.module}.{alias.name}" for alias in node.names]  # `from shared import peers`
    return frozenset(module for module in seen if module.split(".")[0] in PROJECT_PACKAGES)


def _names_in(module: str) -> set[str]:
    tree = _tree(module)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | \
        {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def _settings_classes(module: str) -> list[type[Settings]]:
    tree = _tree(module)
    if tree is None or not any(isinstance(node, ast.ClassDef) and node.name.endswith("Settings")
                               for node in tree.body):
        return []
    loaded = importlib.import_module(module)
    return [value for value in vars(loaded).values() if isinstance(value, type) and
            issubclass(value, Settings) and value.__module__ == module]


# The local runner's rendering (docker-compose's and Knative's are in local/deploy).

def identity_variables() -> set[str]:
    """Variables that only `variables()` may hand a function: an inherited one would defeat minimal secrets."""
    return set(all_secrets()) | {SERVICE_KEY, "K_SINK", "EVENT_SENDER_ISSUER", "EVENT_SENDER_JWKS",
                                 "EVENT_SENDER_SUBJECTS", "EVENT_AUDIENCE"}


def _inheritable(name: str) -> bool:
    return name not in identity_variables() and name not in _PEER_VARIABLES and \
        not name.startswith(("CALLER_KEY_", "LOCAL_"))


_PEER_VARIABLES = frozenset(url_variable(route.name) for route in ROUTES)


def local_environment(route: Route, settings: dict[str, str], inherited: dict[str, str]) -> dict[str, str]:
    """A local function's variables: the non-secret settings and `inherited` ones, and what `variables()` gives
    it, with values from `settings` and the local shop's key set."""
    from local.service_keys import LOCAL_EVENTING_ISSUER, keys_for

    keys = keys_for(settings)
    environment = {name: value for name, value in {**inherited, **settings}.items() if _inheritable(name)}
    sources = {SOURCE: lambda v: str(ROOT / v.value), LITERAL: lambda v: v.value,
               PEER: lambda v: settings.get(url_variable(v.value)), SINK: lambda v: settings.get("K_SINK"),
               SECRET: lambda v: settings.get(v.name) or inherited.get(v.name),
               OWN_KEY: lambda v: keys.private_key(v.value), CALLER_KEY: lambda v: keys.public_key(v.value),
               SENDER_ISSUER: lambda v: LOCAL_EVENTING_ISSUER, SENDER_JWKS: lambda v: keys.eventing_jwks()}
    for variable in variables(route):
        value = sources[variable.kind](variable)
        if value is not None:
            environment[variable.name] = value
    environment["K_SERVICE"] = route.name
    return environment


def broker_environment(settings: dict[str, str], subscriber_url: str) -> dict[str, str]:
    """What the local gateway needs to play the broker (local.broker)."""
    from local.service_keys import EVENTING, keys_for

    keys = keys_for(settings)
    publishers = [route.name for route in ROUTES if route.publishes]
    subscriber = next(route for route in ROUTES if route.name == PUBLISHED_TO)
    return {"LOCAL_BROKER_SUBSCRIBER": subscriber_url, "LOCAL_EVENTING_KEY": keys.private_key(EVENTING),
            "LOCAL_BROKER_SUBJECT": event_senders(subscriber)[0], "LOCAL_BROKER_AUDIENCE": event_audience(PUBLISHED_TO),
            **{caller_key_variable(name): keys.public_key(name) for name in publishers}}


def sender_token(settings: dict[str, str], route: Route) -> str:
    """A token as the broker or PingSource delivering to `route` would send it, from the local issuer."""
    from local.service_keys import keys_for

    return keys_for(settings).sender_token(event_senders(route)[0], event_audience(route.name))
