"""The generated identity objects (ServiceAccounts, Istio AuthorizationPolicies, NetworkPolicies) follow the route
table's `callers` exactly and validate offline against their schemas; and every function, on every platform (the
local runner, docker-compose, Knative), is given exactly the secrets its code reads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import Field, SecretStr

from local.deploy.compose import compose
from local.deploy.identity import PLATFORM_ACCOUNTS, every_identity
from local.deploy.knative import service
from local.environment import SERVICE_KEY, all_secrets, function_secrets, secret_fields
from local.processes import function_env
from local.service_keys import KeySet, kubernetes_objects
from shared.routes import ALERTMANAGER, BROKER, PING_SOURCE, ROUTES, ROUTES_BY_NAME
from shared.settings import SECRET, Settings

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZATION_POLICY_SCHEMA = yaml.safe_load((ROOT / "tests/deploy/schemas/istio-authorizationpolicy.yaml").read_text())
KUBERNETES_VERSION = "1.31"
IDENTITY = [document for document in yaml.safe_load_all((ROOT / "knative/identity.yaml").read_text()) if document]
# Routes that verify user tokens, and those only other functions or the platform reach.
USER_TOKEN_ROUTES = [route for route in ROUTES if route.auth != "none"]
NO_USER_ROUTES = ["catalog-lookup-products", "catalog-reserve-stock", "catalog-release-stock", "catalog-confirm-stock",
                  "catalog-expire-reservations", "cart-remove-ordered", "notify-order-created", "notify-dead-letter"]


def of_kind(kind: str) -> dict[str, dict]:
    return {document["metadata"]["name"]: document for document in IDENTITY if document["kind"] == kind}


def test_the_committed_identity_file_is_what_the_generator_renders():
    assert IDENTITY == every_identity()


def test_every_function_runs_as_its_own_service_account_that_mounts_no_api_token():
    accounts = of_kind("ServiceAccount")

    assert accounts.keys() == {route.name for route in ROUTES}
    for route in ROUTES:
        assert accounts[route.name]["automountServiceAccountToken"] is False
        assert service(route)["spec"]["template"]["spec"]["serviceAccountName"] == route.name


def expected_principals(name: str) -> set[str]:
    route = ROUTES_BY_NAME[name]
    principals = {f"cluster.local/ns/shop/sa/{caller}" for caller in route.callers if caller in ROUTES_BY_NAME}
    platform = {BROKER: "knative-eventing", PING_SOURCE: "knative-eventing", ALERTMANAGER: "monitoring"}
    principals |= {f"cluster.local/ns/{platform[caller]}/sa/{PLATFORM_ACCOUNTS[caller][1]}"
                   for caller in route.callers if caller in platform}
    if route.visibility == "public":
        principals.add("cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account")
    return principals


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_each_authorization_policy_allows_exactly_the_callers_principals(route):
    policy = of_kind("AuthorizationPolicy")[route.name]
    spec = policy["spec"]
    principals = {principal for rule in spec["rules"] for source in rule.get("from", [])
                  for principal in source["source"].get("principals", [])}
    namespaces = {(namespace, tuple(sorted(str(port) for to in rule.get("to", [])
                                           for port in to["operation"].get("ports", []))))
                  for rule in spec["rules"] for source in rule.get("from", [])
                  for namespace in source["source"].get("namespaces", [])}

    assert policy["apiVersion"] == "security.istio.io/v1" and spec["action"] == "ALLOW"
    assert spec["selector"]["matchLabels"] == {"serving.knative.dev/service": route.name}
    assert principals == expected_principals(route.name)
    # Knative's own components (activator, autoscaler, probes) on any port; Prometheus on the metrics port only.
    assert namespaces == {("knative-serving", ()), ("monitoring", ("9464",))}


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_each_network_policy_admits_the_callers_pods_and_the_platform_namespaces(route):
    policy = of_kind("NetworkPolicy")[route.name]["spec"]
    pods = {value for rule in policy["ingress"] for source in rule["from"] if "podSelector" in source
            for expression in source["podSelector"]["matchExpressions"] for value in expression["values"]}
    namespaces = {value for rule in policy["ingress"] for source in rule["from"] if "namespaceSelector" in source
                  for expression in source["namespaceSelector"]["matchExpressions"] for value in expression["values"]}

    assert policy["podSelector"] == {"matchLabels": {"serving.knative.dev/service": route.name}}
    assert policy["policyTypes"] == ["Ingress"]
    assert pods == {caller for caller in route.callers if caller in ROUTES_BY_NAME}
    expected = {"knative-serving", "monitoring"} | {PLATFORM_ACCOUNTS[caller][0] for caller in route.callers
                                                    if caller not in ROUTES_BY_NAME}
    assert namespaces == expected | ({"istio-system"} if route.visibility == "public" else set())


def test_identity_objects_validate_against_their_schemas():
    kinds = {document["kind"] for document in IDENTITY}

    assert kinds == {"ServiceAccount", "AuthorizationPolicy", "NetworkPolicy", "ConfigMap"}
    for document in IDENTITY:
        if document["kind"] == "AuthorizationPolicy":
            jsonschema.validate(document["spec"], AUTHORIZATION_POLICY_SCHEMA)
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_authorization_policy_schema_catches_a_misspelt_field():
    policy = of_kind("AuthorizationPolicy")["catalog-reserve-stock"]["spec"]
    misspelt = {**policy, "rules": [{"from": [{"source": {"principal": ["cluster.local/ns/shop/sa/x"]}}]}]}

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(misspelt, AUTHORIZATION_POLICY_SCHEMA)


# Minimal secrets.

def knative_secrets(route) -> set[str]:
    env = service(route)["spec"]["template"]["spec"]["containers"][0]["env"]
    return {item["name"] for item in env if "secretKeyRef" in item.get("valueFrom", {})}


def compose_secrets(route) -> set[str]:
    env = compose()["services"][route.name]["environment"]
    return env.keys() & (all_secrets() | {SERVICE_KEY})


def runner_secrets(route) -> set[str]:
    every_secret = {name: "postgresql://x:y@127.0.0.1/z" for name in all_secrets()}
    env = function_env(route, 8000, None, every_secret)
    return env.keys() & (all_secrets() | {SERVICE_KEY})


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_every_platform_gives_a_function_exactly_the_secrets_its_code_reads(route):
    derived = set(function_secrets(route))

    assert knative_secrets(route) == derived
    assert compose_secrets(route) == derived
    assert runner_secrets(route) == derived


def test_only_functions_that_check_user_tokens_hold_the_user_token_key():
    user_token_keys = set().union(*(function_secrets(route) for route in USER_TOKEN_ROUTES)) - {
        "MONGODB_URL", "REDIS_URL", "DATABASE_URL", SERVICE_KEY}

    assert user_token_keys, "the functions that check user tokens read some key"
    for name in NO_USER_ROUTES:
        assert not function_secrets(ROUTES_BY_NAME[name]) & user_token_keys, name


def test_every_function_that_calls_or_publishes_holds_its_own_key_and_a_function_only_called_holds_none():
    for route in ROUTES:
        if route.calls or route.publishes:
            assert SERVICE_KEY in function_secrets(route), route.name
    for name in NO_USER_ROUTES:
        if not ROUTES_BY_NAME[name].calls and not ROUTES_BY_NAME[name].publishes:
            assert SERVICE_KEY not in function_secrets(ROUTES_BY_NAME[name]), name


def test_each_function_gets_only_its_own_stores_credentials():
    stores = {"catalog": "MONGODB_URL", "cart": "REDIS_URL", "orders": "DATABASE_URL", "notify": "DATABASE_URL"}
    for route in ROUTES:
        own = stores[route.source.split("/")[1]]
        assert function_secrets(route) & {"MONGODB_URL", "REDIS_URL", "DATABASE_URL"} == {own}, route.name


def test_a_secret_is_any_secretstr_field_or_one_marked_secret_and_nothing_else():
    class Example(Settings):
        api_key: SecretStr
        maybe_key: SecretStr | None = None
        dsn: str = Field(default="x", json_schema_extra=SECRET)
        region: str = Field(default="eu", validation_alias="AWS_REGION")
        timeout: float = 1.0

    assert secret_fields(Example) == {"API_KEY", "MAYBE_KEY", "DSN"}


def test_every_identity_follows_the_namespace_the_kustomization_deploys_to():
    """Subjects, audiences and principals name the namespace; kustomize's replacements rewrite them with the
    URLs (tests/deploy/test_knative_semantics.py renders the same way)."""
    from tests.deploy.test_knative_semantics import OTHER_NAMESPACE, kustomize

    copy = Path(tempfile.mkdtemp()) / "knative"
    shutil.copytree(ROOT / "knative", copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization | {"namespace": OTHER_NAMESPACE}))
    try:
        rendered = yaml.safe_dump_all(kustomize(copy))
    finally:
        shutil.rmtree(copy.parent)

    assert ":shop:" not in rendered and "/shop/" not in rendered and "/ns/shop/" not in rendered
    assert f"system:serviceaccount:{OTHER_NAMESPACE}:notify-order-created-oidc-eventing.knative.dev-trigger" in rendered
    assert f"serving.knative.dev/service/{OTHER_NAMESPACE}/orders-outbox-relay" in rendered
    assert f"cluster.local/ns/{OTHER_NAMESPACE}/sa/orders-create-order" in rendered


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_function_mounts_its_own_private_key_and_only_its_callers_public_keys(route):
    env = {item["name"]: item for item in service(route)["spec"]["template"]["spec"]["containers"][0]["env"]}
    public = {item["valueFrom"]["configMapKeyRef"]["key"] for name, item in env.items()
              if name.startswith("CALLER_KEY_")}

    if SERVICE_KEY in env:
        assert env[SERVICE_KEY]["valueFrom"]["secretKeyRef"] == {"name": f"{route.name}-service-key",
                                                                 "key": "private.pem"}
    expected = {f"{caller}.pem" for caller in route.callers if caller in ROUTES_BY_NAME}
    assert public == (expected if route.visibility != "public" and route.signature == "http" else set())


def test_the_key_objects_for_a_cluster_are_the_ones_the_services_name_and_validate():
    objects = kubernetes_objects(KeySet.generate())
    secrets = {document["metadata"]["name"] for document in objects if document["kind"] == "Secret"}
    [public] = [document for document in objects if document["kind"] == "ConfigMap"]
    named = {item["valueFrom"]["secretKeyRef"]["name"] for route in ROUTES
             for item in service(route)["spec"]["template"]["spec"]["containers"][0]["env"]
             if item["name"] == SERVICE_KEY}

    assert named == secrets and public["metadata"]["name"] == "shop-service-keys"
    assert all("PRIVATE" not in value for value in public["data"].values())
    for document in objects:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_card_fingerprint_key_reaches_only_the_function_that_takes_orders():
    assert {route.name for route in ROUTES if "CARD_FINGERPRINT_KEY" in function_secrets(route)} == \
        {"orders-create-order"}


def test_user_token_keys_reach_exactly_the_functions_that_check_user_tokens():
    assert {route.name for route in ROUTES if "USER_TOKEN_HS256_KEYS" in function_secrets(route)} == \
        {route.name for route in ROUTES if route.auth != "none"}


def test_the_compose_gateway_listens_on_this_machine_only():
    # Its functions verify tokens with fixed local keys anyone can read: a network-wide port would let anyone
    # mint admin tokens.
    assert all(port.startswith("127.0.0.1:") for service in compose()["services"].values()
               for port in service.get("ports", []))
