"""Everything generated from the route table is current, valid against its schemas, and consistent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from local.environment import all_secrets
from local.generate import drift, rendered
from shared.peers import url_variable
from shared.routes import ROUTES, public_routes

ROOT = Path(__file__).resolve().parents[2]
KNATIVE_SCHEMAS = ROOT.parent / "shared" / "schemas" / "knative"
KUBERNETES_VERSION = "1.31"
PEER_VARIABLES = {url_variable(route.name) for route in ROUTES}
# Per-revision annotation keys of knative/serving pkg/apis/autoscaling/register.go (v1.x, kebab-case).
AUTOSCALING_ANNOTATIONS = {
    "class", "metric", "target", "target-utilization-percentage", "target-burst-capacity", "window",
    "panic-window-percentage", "panic-threshold-percentage", "min-scale", "max-scale", "initial-scale",
    "activation-scale", "scale-down-delay", "scale-to-zero-pod-retention-period", "metric-aggregation-algorithm",
}


def documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def kustomized() -> list[dict]:
    kustomization = yaml.safe_load((ROOT / "knative" / "kustomization.yaml").read_text())
    return [document for resource in kustomization["resources"]
            for document in documents(ROOT / "knative" / resource)]


def by_kind(kind: str) -> list[dict]:
    return [document for document in kustomized() if document["kind"] == kind]


def knative_services() -> list[dict]:
    return [service for service in by_kind("Service") if service["apiVersion"].startswith("serving.knative.dev")]


def test_committed_generated_files_match_the_generator():
    assert drift() == [], "run `make manifests` and commit the result"


def test_the_generator_is_idempotent():
    assert rendered() == rendered()


def crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in KNATIVE_SCHEMAS.glob("*.yaml"):
        for crd in documents(path):
            for version in crd["spec"]["versions"]:
                api_version = f"{crd['spec']['group']}/{version['name']}"
                schemas[(api_version, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.skipif(not KNATIVE_SCHEMAS.is_dir(), reason="../shared/schemas/knative is not beside the project")
def test_every_knative_resource_validates_against_its_crd():
    schemas = crd_schemas()
    knative = [d for d in kustomized() if d["apiVersion"].split("/")[0].endswith("knative.dev")]

    assert {d["kind"] for d in knative} == {"Service", "Broker", "Trigger", "SinkBinding", "PingSource"}
    for document in knative:
        jsonschema.validate(document, schemas[(document["apiVersion"], document["kind"])])


def test_knative_services_carry_only_known_autoscaling_annotations():
    for service in knative_services():
        annotations = service["spec"]["template"]["metadata"]["annotations"]
        keys = {key.split("/", 1)[1] for key in annotations if key.startswith("autoscaling.knative.dev/")}
        assert keys <= AUTOSCALING_ANNOTATIONS, service["metadata"]["name"]
        assert annotations["autoscaling.knative.dev/metric"] == "concurrency"


def test_services_follow_the_route_table():
    services = {s["metadata"]["name"]: s for s in knative_services()}

    assert services.keys() == {route.name for route in ROUTES}
    for route in ROUTES:
        spec = services[route.name]["spec"]["template"]["spec"]
        env = {item["name"]: item.get("value") for item in spec["containers"][0]["env"]}
        assert (env["FUNCTION_SOURCE"], env["FUNCTION_TARGET"], env["FUNCTION_SIGNATURE_TYPE"]) == (
            route.source, route.target, route.signature)
        assert spec["containerConcurrency"] == route.scaling.container_concurrency
        assert int(env["THREADS"]) == route.scaling.container_concurrency and env["WORKERS"] == "1"
        assert spec["enableServiceLinks"] is False
        annotations = services[route.name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/min-scale"] == str(route.scaling.min_scale)
        assert annotations["autoscaling.knative.dev/max-scale"] == str(route.scaling.max_scale)
        assert annotations.get("autoscaling.knative.dev/scale-down-delay") == route.scaling.scale_down_delay
        assert annotations["prometheus.io/scrape"] == "true"
        peers = {item["name"] for item in spec["containers"][0]["env"] if item["name"] in PEER_VARIABLES}
        assert peers == {url_variable(peer) for peer in route.calls}, route.name


def test_functions_stay_off_the_ports_knative_reserves_in_each_pod():
    reserved = {8012, 8013, 8022, 8008, 9090, 9091}  # queue-proxy: proxy, h2c, admin, profiling, metrics
    for service in by_kind("Service"):
        container = service["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert container["ports"][0]["containerPort"] not in reserved
        assert int(env["METRICS_PORT"]) not in reserved
        assert service["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == env["METRICS_PORT"]


def test_no_secret_values_are_committed_in_the_services():
    secrets = all_secrets() | {"SERVICE_PRIVATE_KEY"}
    for service in by_kind("Service"):
        for item in service["spec"]["template"]["spec"]["containers"][0]["env"]:
            if item["name"] in secrets:
                assert "secretKeyRef" in item["valueFrom"] and "value" not in item


def test_eventing_and_routing_refer_to_services_that_exist():
    services = {s["metadata"]["name"]: s for s in knative_services()}
    brokers = {b["metadata"]["name"] for b in by_kind("Broker")}

    [trigger] = by_kind("Trigger")
    assert trigger["spec"]["broker"] in brokers
    assert trigger["spec"]["filter"]["attributes"] == {"type": "com.example.shop.order.created"}
    assert trigger["spec"]["subscriber"]["ref"]["name"] in services
    assert trigger["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] in services
    pinged = {ping["spec"]["sink"]["ref"]["name"] for ping in by_kind("PingSource")}
    assert pinged == {"orders-outbox-relay", "catalog-expire-reservations"}
    [binding] = by_kind("SinkBinding")
    assert binding["spec"]["sink"]["ref"]["name"] in brokers
    selected = {name for name, s in services.items()
                if binding["spec"]["subject"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()}
    assert selected == {"orders-create-order", "orders-outbox-relay", "notify-replay-dead-letter"}
    assert selected == {route.name for route in ROUTES if route.publishes}
    [virtual_service] = by_kind("VirtualService")
    routed = {rule["rewrite"]["authority"].split(".")[0] for rule in virtual_service["spec"]["http"]}
    assert routed == {route.name for route in public_routes()}
    assert {peer for route in ROUTES for peer in route.calls} <= services.keys()


def test_core_kubernetes_objects_validate():
    core = [d for d in kustomized() if "knative.dev" not in d["apiVersion"] and "istio.io" not in d["apiVersion"]]
    stores = [d for path in (ROOT / "knative" / "stores").glob("*.yaml") if path.name != "kustomization.yaml"
              for d in documents(path)]
    examples = documents(ROOT / "knative" / "secrets.example.yaml")
    migration = documents(ROOT / "knative" / "migrate" / "job.yaml")

    assert {d["kind"] for d in core + stores + migration} >= {"Namespace", "ConfigMap", "Service", "StatefulSet",
                                                              "Deployment", "Job"}
    for document in core + stores + examples + migration:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_compose_file_follows_the_compose_spec():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec",
                             str(ROOT / "local" / "docker-compose.yml")], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_knative_and_route_table_list_the_same_functions():
    compose = yaml.safe_load((ROOT / "local" / "docker-compose.yml").read_text())["services"]
    functions = {name: service["environment"] for name, service in compose.items()
                 if "FUNCTION_TARGET" in service.get("environment", {})}

    assert {name: (env["FUNCTION_SOURCE"], env["FUNCTION_TARGET"]) for name, env in functions.items()} == {
        route.name: (route.source, route.target) for route in ROUTES}
    assert {name: env.keys() & PEER_VARIABLES for name, env in functions.items()} == {
        route.name: {url_variable(peer) for peer in route.calls} for route in ROUTES}
    assert json.loads(compose["gateway"]["environment"]["GATEWAY_UPSTREAMS"]).keys() == {
        route.name for route in public_routes()}
    # Publishers hand events to the gateway, which plays the broker (local.broker); no other function has a sink.
    assert {name: env.get("K_SINK") for name, env in functions.items()} == {
        route.name: "http://gateway:8080/_local/broker" if route.publishes else None for route in ROUTES}


def test_openapi_document_is_valid_and_covers_every_public_route():
    document = json.loads((ROOT / "openapi.json").read_text())

    validate_openapi(document)
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path): operation for path, item in document["paths"].items()
                  for method, operation in item.items()}
    assert operations.keys() == {(route.method, route.path) for route in public_routes()}
    assert "Problem" in document["components"]["schemas"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by `make test`")
def test_alert_rules_pass_promtool():
    result = subprocess.run(["promtool", "check", "rules", str(ROOT / "knative/observability/alert-rules.yml")],
                            capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_covers_the_operators_questions():
    dashboard = json.loads((ROOT / "knative/observability/grafana-dashboard.json").read_text())
    expressions = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])

    for metric in ("shop_http_requests_total", "shop_http_request_duration_seconds_bucket", "shop_cart_active_carts",
                   "shop_orders_total", "shop_payments_total", "shop_notifications_total", "shop_outbox_pending"):
        assert metric in expressions


def test_the_local_gateway_serves_the_openapi_document(gateway):
    response = gateway.get("/openapi.json")

    assert response.status_code == 200
    assert response.json() == json.loads((ROOT / "openapi.json").read_text())
