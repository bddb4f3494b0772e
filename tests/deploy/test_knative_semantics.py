"""What the generated manifests would do on a real cluster, by the rules of Knative's, Istio's and kustomize's own
source. Each test names the upstream file whose behaviour it encodes; the schemas cannot see any of this."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from local.deploy import knative
from shared.peers import url_variable
from shared.routes import COLD_STARTS, KEPT_WARM, RETRIED, ROUTES, ROUTES_BY_NAME, public_routes
from shared.settings import PeerSettings
from tests.deploy.test_manifests import KNATIVE_SCHEMAS, ROOT, by_kind, crd_schemas, documents, kustomized

PEERS = {url_variable(route.name): route.name for route in ROUTES}
CALLEES = {peer for route in ROUTES for peer in route.calls}
OTHER_NAMESPACE = "shop-staging"
# knative/serving pkg/autoscaler/config/config.go defaultConfig(): container-concurrency-target-percentage and
# container-concurrency-target-default.
TARGET_UTILIZATION_DEFAULT, CONCURRENCY_TARGET_DEFAULT = 0.70, 100.0
RELAY_TICK_SECONDS = 60  # the PingSources' "* * * * *"


def kustomization_namespace() -> str:
    return yaml.safe_load((ROOT / "knative" / "kustomization.yaml").read_text())["namespace"]


def services() -> dict[str, dict]:
    return {service["metadata"]["name"]: service for service in by_kind("Service")
            if service["apiVersion"] == "serving.knative.dev/v1"}


def container(service: dict) -> dict:
    [function] = service["spec"]["template"]["spec"]["containers"]
    return function


def peer_urls(service: dict) -> dict[str, str]:
    """The callee's name -> the URL this Service's function reaches it at."""
    return {PEERS[item["name"]]: item["value"] for item in container(service)["env"] if item["name"] in PEERS}


def expanded_hosts(host: str, cluster_domain: str = "cluster.local") -> set[str]:
    """knative/networking pkg/ingress/ingress.go ExpandedHosts: the host forms the local gateway answers."""
    suffixes = ("", "." + cluster_domain, ".svc." + cluster_domain)
    return {host.removesuffix(suffix) for suffix in suffixes if suffix == "" or host.endswith(suffix)}


def answered_hosts(name: str, namespace: str) -> set[str]:
    # A cluster-local Knative Route's host is name.namespace.svc.<cluster domain> (knative/pkg network/domain.go).
    return expanded_hosts(f"{name}.{namespace}.svc.cluster.local")


def seconds(duration: str) -> float:
    """A Go duration as Knative parses its annotations (time.ParseDuration), for the units used here."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"not a duration: {duration!r}"
    hours, minutes, secs = (int(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + secs


def kubectl() -> str:
    """A kubectl whose built-in kustomize knows `replacements` (kustomize >= 4.1, kubectl >= 1.22)."""
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("kubectl is not installed: the kustomize output is not rendered")
    version = subprocess.run([found, "version", "--client", "-o", "json"], capture_output=True, text=True)
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "v0")
    major, minor = (int(part) for part in re.findall(r"\d+", kustomize)[:2] or (0, 0))
    if (major, minor) < (4, 1):
        pytest.skip(f"kubectl's kustomize {kustomize} predates `replacements`: install kubectl >= 1.22")
    return found


def kustomize(directory: Path) -> list[dict]:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def deployed_elsewhere(tmp_path_factory) -> list[dict]:
    """`kubectl kustomize` of knative/ with the kustomization's namespace changed, as an operator would."""
    copy = tmp_path_factory.mktemp("kustomize") / "knative"
    shutil.copytree(ROOT / "knative", copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization | {"namespace": OTHER_NAMESPACE}))
    return kustomize(copy)


def test_peer_urls_name_a_host_knatives_local_gateway_answers():
    """knative/networking pkg/ingress/ingress.go (ExpandedHosts): a cluster-local Service answers at
    name.ns.svc.cluster.local, name.ns.svc and name.ns only; a bare name gets a 404 from the local gateway."""
    namespace = kustomization_namespace()

    for name, service in services().items():
        urls = peer_urls(service)
        assert urls.keys() == set(ROUTES_BY_NAME[name].calls), name
        for callee, url in urls.items():
            assert urlsplit(url).scheme == "http"
            assert urlsplit(url).hostname in answered_hosts(callee, namespace), url
            assert callee not in answered_hosts(callee, namespace)


def test_peer_urls_and_gateway_routes_follow_the_kustomization_namespace(deployed_elsewhere):
    """kubernetes-sigs/kustomize api/filters/replacement/replacement.go writes the deployed namespace into each URL.
    (Not the Downward API: knative/serving pkg/apis/serving/fieldmask.go EnvVarSourceMask drops `fieldRef` unless
    the cluster enables kubernetes.podspec-fieldref, which pkg/apis/config/features.go leaves Disabled.)"""
    rendered = {(document["kind"], document["metadata"]["name"]): document for document in deployed_elsewhere}

    for route in ROUTES:
        for callee, url in peer_urls(rendered[("Service", route.name)]).items():
            assert urlsplit(url).hostname in answered_hosts(callee, OTHER_NAMESPACE), url
    for rule in rendered[("VirtualService", "shop-api")]["spec"]["http"]:
        assert rule["rewrite"]["authority"] in answered_hosts(rule["name"], OTHER_NAMESPACE)
    assert {document["metadata"].get("namespace", OTHER_NAMESPACE) for document in deployed_elsewhere} == {
        OTHER_NAMESPACE}
    for service in (d for d in deployed_elsewhere if d["kind"] == "Service"):
        assert "fieldRef" not in json.dumps(container(service)["env"])


def _imports(path: Path) -> list[Path]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("functions", "shared"):
            modules += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names if alias.name.split(".")[0] in ("functions", "shared")]
    return [ROOT / (module.replace(".", "/") + ".py") for module in modules]


def import_closure(source: str) -> set[Path]:
    seen: set[Path] = set()
    pending = [ROOT / source]
    while pending:
        path = pending.pop()
        if path not in seen and path.is_file():
            seen.add(path)
            pending += _imports(path)
    return seen


PEER_CALL = re.compile(r'peers\.call\(\s*"([a-z0-9-]+)"')


def peer_calls(paths) -> dict[str, set[Path]]:
    """Each function name passed to peers.call in these files -> the files that call it."""
    found: dict[str, set[Path]] = {}
    for path in paths:
        for name in PEER_CALL.findall(path.read_text()):
            found.setdefault(name, set()).add(path)
    return found


def test_the_route_table_lists_the_functions_each_function_calls():
    """knative/networking pkg/ingress/ingress.go: without its full URL a call gets a 404, so every peers.call in the
    code must be a `calls` entry of the route table, and every entry a call the function's code can make."""
    everywhere = peer_calls([*(ROOT / "functions").rglob("*.py"), *(ROOT / "shared").rglob("*.py")])

    assert everywhere.keys() == CALLEES
    for route in ROUTES:
        assert set(route.calls) <= peer_calls(import_closure(route.source)).keys(), route.name


def test_every_function_another_one_calls_has_a_cold_start_decision():
    """knative/serving pkg/apis/autoscaling/v1alpha1/pa_lifecycle.go (ScaleBounds: min-scale keeps replicas) and
    pkg/autoscaler/scaling/autoscaler.go (scale-down-delay: the highest count of that window). A cold start
    (Knative's pod start plus ours, over a second) outlasts a caller's PEER_TIMEOUT_SECONDS."""
    rendered = services()
    outbox = ROOT / "functions" / "orders" / "outbox.py"
    callers = peer_calls([*(ROOT / "functions").rglob("*.py"), *(ROOT / "shared").rglob("*.py")])

    assert PeerSettings.model_fields["peer_timeout_seconds"].default <= 2
    for route in ROUTES:
        annotations = rendered[route.name]["spec"]["template"]["metadata"]["annotations"]
        min_scale = int(annotations["autoscaling.knative.dev/min-scale"])
        if route.name not in CALLEES:
            assert route.cold_start is None, route.name
        elif route.cold_start == KEPT_WARM:
            assert min_scale >= 1, route.name
        else:
            assert route.cold_start == RETRIED, f"{route.name}: pick one of {COLD_STARTS}"
            assert min_scale == 0 and callers[route.name] == {outbox}, route.name
            delay = annotations["autoscaling.knative.dev/scale-down-delay"]
            assert seconds(delay) >= RELAY_TICK_SECONDS, route.name


def test_no_readiness_probe_turns_off_fast_startup_probing():
    """knative/serving pkg/queue/readiness/probe.go (IsAggressive): queue-proxy probes every 50 ms while a pod starts
    only when periodSeconds is 0; any period adds up to that period to every cold start."""
    for name, service in services().items():
        probe = container(service).get("readinessProbe", {})
        assert probe.get("periodSeconds", 0) == 0, name


def test_istio_retries_nothing_on_the_public_routes():
    """istio pilot/pkg/networking/core/route/retry/retry.go (ConvertPolicy): no `retries` means two retries, on 503
    too; `attempts: 0` means none. net-istio pkg/reconciler/ingress/resources/virtual_service.go sets the same for
    Knative's own routes ("Override default istio behaviour of retrying twice")."""
    for virtual_service in by_kind("VirtualService"):
        for rule in virtual_service["spec"]["http"]:
            assert rule.get("retries", {}).get("attempts") == 0, rule["name"]


def effective_target(annotations: dict[str, str], container_concurrency: int) -> float:
    """knative/serving pkg/reconciler/autoscaling/resources/target.go (ResolveMetricTarget), concurrency metric."""
    total = float(container_concurrency or CONCURRENCY_TARGET_DEFAULT)
    if "autoscaling.knative.dev/target" in annotations:
        total = float(annotations["autoscaling.knative.dev/target"])
        if container_concurrency:
            total = min(total, container_concurrency)
    utilization = TARGET_UTILIZATION_DEFAULT
    if "autoscaling.knative.dev/target-utilization-percentage" in annotations:  # pa_lifecycle.go: a percentage
        utilization = float(annotations["autoscaling.knative.dev/target-utilization-percentage"]) / 100
    return max(1.0, total * utilization)


def test_the_autoscaler_aims_for_the_route_tables_target():
    """knative/serving pkg/reconciler/autoscaling/resources/target.go: target = min(target annotation,
    containerConcurrency) x target utilization (70 % by default). The route table's `target` is what a replica should
    hold, so the manifests must not let Knative discount it again."""
    for name, service in services().items():
        spec = service["spec"]["template"]["spec"]
        annotations = service["spec"]["template"]["metadata"]["annotations"]
        assert effective_target(annotations, spec["containerConcurrency"]) == pytest.approx(
            ROUTES_BY_NAME[name].scaling.target, rel=1e-6), name
        assert 1 <= float(annotations["autoscaling.knative.dev/target-utilization-percentage"]) <= 100  # validation


def test_event_publishers_are_admitted_by_the_sinkbinding_webhook_in_inclusion_mode():
    """knative/pkg webhook/psbinding/psbinding.go: in inclusion mode the webhook's namespaceSelector and
    objectSelector both require bindings.knative.dev/include=true; without it a re-apply strips K_SINK."""
    [namespace] = [d for d in documents(ROOT / "knative" / "namespace.yaml") if d["kind"] == "Namespace"]
    [binding] = by_kind("SinkBinding")
    selector = binding["spec"]["subject"]["selector"]["matchLabels"]

    assert namespace["metadata"]["labels"][knative.BINDING_INCLUDE] == "true"
    subjects = {name for name, service in services().items()
                if selector.items() <= service["metadata"]["labels"].items()}
    assert subjects == {route.name for route in ROUTES if route.publishes}
    for name in subjects:
        labels = services()[name]["metadata"]["labels"]
        assert labels[knative.BINDING_INCLUDE] == "true" and "bindings.knative.dev/exclude" not in labels


def test_the_broker_is_kafka_backed_by_default_with_its_configmap():
    """knative-extensions/eventing-kafka-broker control-plane/pkg/kafka reads bootstrap.servers,
    default.topic.partitions and default.topic.replication.factor from the Broker's spec.config ConfigMap, whose
    namespace defaults to the Broker's (knative/eventing pkg/apis/eventing/v1/broker_defaults.go)."""
    [broker] = by_kind("Broker")
    configmaps = {configmap["metadata"]["name"]: configmap for configmap in by_kind("ConfigMap")}

    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == knative.BROKER_CLASS == "Kafka"
    config = broker["spec"]["config"]
    assert (config["apiVersion"], config["kind"], config.get("namespace")) == ("v1", "ConfigMap", None)
    data = configmaps[config["name"]]["data"]
    assert data["bootstrap.servers"] and int(data["default.topic.partitions"]) >= 1
    assert int(data["default.topic.replication.factor"]) > 1  # a topic on one Kafka broker dies with it


@pytest.mark.skipif(not KNATIVE_SCHEMAS.is_dir(), reason="../shared/schemas/knative is not beside the project")
def test_the_trial_broker_class_renders_a_valid_broker(monkeypatch):
    """knative/eventing config/core/resources/broker.yaml (the CRD schema): the one setting BROKER_CLASS switches to
    MTChannelBasedBroker, backed by the cluster's default channel (in-memory unless configured: trials only)."""
    monkeypatch.setattr(knative, "BROKER_CLASS", "MTChannelBasedBroker")

    [broker] = knative.broker()

    jsonschema.validate(broker, crd_schemas()[("eventing.knative.dev/v1", "Broker")])
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "MTChannelBasedBroker"
    assert broker["spec"]["config"]["namespace"] == "knative-eventing"


def test_every_function_is_cluster_local_and_the_tls_gateway_is_the_only_public_entry():
    """knative/networking pkg/apis/networking/register.go (VisibilityLabelKey): a Service labelled cluster-local
    gets no public host, so the shop is reachable only through its VirtualService, on a Gateway serving HTTPS."""
    [gateway] = by_kind("Gateway")
    [virtual_service] = by_kind("VirtualService")

    for name, service in services().items():
        assert service["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local", name
    assert virtual_service["spec"]["gateways"] == [gateway["metadata"]["name"]]
    servers = {server["port"]["protocol"]: server for server in gateway["spec"]["servers"]}
    assert servers.keys() == {"HTTPS", "HTTP"}
    assert servers["HTTPS"]["tls"]["mode"] == "SIMPLE" and servers["HTTPS"]["tls"]["credentialName"]
    assert servers["HTTP"]["tls"] == {"httpsRedirect": True}
    assert all(server["hosts"] == virtual_service["spec"]["hosts"] for server in servers.values())
    routed = {rule["name"] for rule in virtual_service["spec"]["http"]}
    assert routed == {route.name for route in public_routes()}


def test_every_pod_meets_the_restricted_pod_security_standard():
    """kubernetes staging/src/k8s.io/pod-security-admission/policy (check_runAsNonRoot.go,
    check_seccompProfile_restricted.go, check_capabilities_restricted.go, check_allowPrivilegeEscalation.go,
    check_restrictedVolumes.go) for the functions and the migration Job; knative/serving
    pkg/apis/serving/v1/revision_defaults.go leaves emptyDir mounts writable, and pkg/apis/serving/fieldmask.go
    accepts automountServiceAccountToken only as false."""
    [namespace] = [d for d in documents(ROOT / "knative" / "namespace.yaml") if d["kind"] == "Namespace"]
    pods = {name: service["spec"]["template"]["spec"] for name, service in services().items()}
    [job] = documents(ROOT / "knative" / "migrate" / "job.yaml")
    pods[job["metadata"]["name"]] = job["spec"]["template"]["spec"]

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod in pods.items():
        [function] = pod["containers"]
        context = function["securityContext"]
        assert pod["automountServiceAccountToken"] is False, name
        assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        assert context["readOnlyRootFilesystem"] is True
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert all(volume.keys() == {"name", "emptyDir"} for volume in volumes.values()), name
        mounts = {mount["mountPath"]: mount["name"] for mount in function["volumeMounts"]}
        assert mounts["/tmp"] in volumes and not any(mount.get("readOnly") for mount in function["volumeMounts"])


def test_every_image_is_pinned_by_digest():
    """kubernetes-sigs/kustomize api/filters/imagetag/updater.go: an `images:` entry with `digest` (and no tag)
    rewrites each matching image to name@digest, so a re-pushed tag never changes what runs."""
    [image] = yaml.safe_load((ROOT / "knative" / "kustomization.yaml").read_text())["images"]
    [job] = documents(ROOT / "knative" / "migrate" / "job.yaml")

    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"]) and "newTag" not in image
    assert yaml.safe_load((ROOT / "knative" / "migrate" / "kustomization.yaml").read_text())["images"] == [image]
    for service in services().values():
        assert container(service)["image"] == image["name"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image["name"]


def test_the_rendered_output_runs_every_function_by_digest():
    """kubernetes-sigs/kustomize api/filters/imagetag/updater.go, as `kubectl kustomize` applies it."""
    [image] = yaml.safe_load((ROOT / "knative" / "kustomization.yaml").read_text())["images"]

    rendered = [d for d in kustomize(ROOT / "knative") if d["kind"] == "Service"]
    [job] = kustomize(ROOT / "knative" / "migrate")

    assert len(rendered) == len(ROUTES)
    for pod in [service["spec"]["template"]["spec"] for service in rendered] + [job["spec"]["template"]["spec"]]:
        assert pod["containers"][0]["image"] == f"{image['newName']}@{image['digest']}"
