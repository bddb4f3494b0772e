"""Who may reach each function in a cluster, rendered from the route table's `callers`: one ServiceAccount per
function, an Istio AuthorizationPolicy allowing exactly its callers' mTLS principals, and a NetworkPolicy.

The mesh is the outer wall; the application's own check (shared.service_identity) holds without it. What the mesh
cannot tell apart, and so must let in (Knative's "Enabling requests to Knative services when additional
authorization policies are enabled", knative.dev/docs/serving/istio-authorization):
- the `knative-serving` namespace: the activator re-sends requests to a function scaled to zero (or past its
  burst capacity) as itself, and the autoscaler and probes reach the pods from there;
- for public routes, the ingress gateway in `istio-system` (Knative's local gateway runs on its pods).
"""

from __future__ import annotations

from local.deploy.knative import BROKER_CLASS, CONFIG_MAP, EVENTING_OIDC, METRICS_PORT, NAMESPACE, SERVING_PORT
from local.environment import TRIGGER
from shared.routes import ALERTMANAGER, BROKER, PING_SOURCE, ROUTES, ROUTES_BY_NAME, Route

KNATIVE_SERVING, KNATIVE_EVENTING = "knative-serving", "knative-eventing"
ISTIO, MONITORING = "istio-system", "monitoring"
# The ServiceAccounts the platform's senders run as (each install's defaults; change them with your install).
PLATFORM_ACCOUNTS = {
    BROKER: {"Kafka": (KNATIVE_EVENTING, "knative-kafka-broker-data-plane"),  # eventing-kafka-broker's dispatcher
             "MTChannelBasedBroker": (KNATIVE_EVENTING, "mt-broker-filter")}[BROKER_CLASS],
    PING_SOURCE: (KNATIVE_EVENTING, "pingsource-mt-adapter"),
    ALERTMANAGER: (MONITORING, "alertmanager-main"),  # kube-prometheus; PLACEHOLDER for other installs
}
INGRESS_ACCOUNT = (ISTIO, "istio-ingressgateway-service-account")
POD_LABEL = "serving.knative.dev/service"  # Knative labels every pod of a Service with its name
QUEUE_PROXY_PORT, QUEUE_PROXY_METRICS_PORT = 8012, 9091  # knative/serving pkg/apis/networking/ports.go


def principal(namespace: str, account: str) -> str:
    """An Istio mTLS principal: the SPIFFE identity of a ServiceAccount, without `spiffe://`."""
    return f"cluster.local/ns/{namespace}/sa/{account}"


def caller_accounts(route: Route) -> list[tuple[str, str]]:
    """(namespace, ServiceAccount) of every caller the route table lists, and of the ingress for public routes."""
    accounts = [(NAMESPACE, caller) if caller in ROUTES_BY_NAME else PLATFORM_ACCOUNTS[caller]
                for caller in route.callers]
    if route.visibility == "public":
        accounts.append(INGRESS_ACCOUNT)
    return accounts


def service_account(route: Route) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": route.name, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/name": route.name, "app.kubernetes.io/part-of": "shop"}},
            "automountServiceAccountToken": False}


def authorization_policy(route: Route) -> dict:
    """ALLOW only the callers' principals; anything else the sidecar refuses (403) before the function sees it."""
    rules = [{"from": [{"source": {"principals": sorted(principal(*account) for account in caller_accounts(route))}}]},
             {"from": [{"source": {"namespaces": [KNATIVE_SERVING]}}]},
             {"from": [{"source": {"namespaces": [MONITORING]}}],
              "to": [{"operation": {"ports": [str(METRICS_PORT)]}}]}]
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": route.name, "namespace": NAMESPACE},
            "spec": {"selector": {"matchLabels": {POD_LABEL: route.name}}, "action": "ALLOW", "rules": rules}}


def network_policy(route: Route) -> dict:
    """The same callers at the network layer: their pods and the namespaces of the platform's senders; Knative's
    own components on any port; Prometheus on the metrics ports only."""
    functions = sorted(caller for caller in route.callers if caller in ROUTES_BY_NAME)
    platform = sorted({namespace for namespace, _ in caller_accounts(route) if namespace != NAMESPACE})
    sources = [{"namespaceSelector": _named(*platform)}] if platform else []
    if functions:
        sources.insert(0, {"podSelector": {"matchExpressions": [
            {"key": POD_LABEL, "operator": "In", "values": functions}]}})
    serving = [{"protocol": "TCP", "port": port} for port in (QUEUE_PROXY_PORT, SERVING_PORT)]
    ingress = [{"from": sources, "ports": serving}] if sources else []
    ingress += [{"from": [{"namespaceSelector": _named(KNATIVE_SERVING)}]},
                {"from": [{"namespaceSelector": _named(MONITORING)}],
                 "ports": [{"protocol": "TCP", "port": port} for port in (METRICS_PORT, QUEUE_PROXY_METRICS_PORT)]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": route.name, "namespace": NAMESPACE},
            "spec": {"podSelector": {"matchLabels": {POD_LABEL: route.name}}, "policyTypes": ["Ingress"],
                     "ingress": ingress}}


def _named(*namespaces: str) -> dict:
    return {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}]}


def identity(route: Route) -> list[dict]:
    return [service_account(route), authorization_policy(route), network_policy(route)]


def eventing_oidc() -> dict:
    """Whom event consumers believe: the cluster's ServiceAccount token issuer and its public keys. PLACEHOLDER
    values: fill them from `kubectl get --raw /.well-known/openid-configuration` (issuer) and
    `kubectl get --raw /openid/v1/jwks` (jwks.json) of the cluster you deploy to."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": EVENTING_OIDC, "namespace": NAMESPACE},
            "data": {"issuer": "https://kubernetes.default.svc.cluster.local", "jwks.json": '{"keys": []}'}}


def every_identity() -> list[dict]:
    return [eventing_oidc(), *(document for route in ROUTES for document in identity(route))]


def namespace_replacements() -> list[dict]:
    """kustomize replacements writing the deployed namespace into every identity that names it: the senders'
    subjects (`system:serviceaccount:<ns>:…`), the consumers' audiences (`…/service/<ns>/<name>`) and the callers'
    principals (`cluster.local/ns/<ns>/sa/…`), as knative.namespace_replacement does for the URLs."""
    def env(route: Route, name: str) -> str:
        return f"spec.template.spec.containers.[name=function].env.[name={name}].value"

    consumers = [route for route in ROUTES if route.signature == "cloudevent"]
    subjects = [_target("serving.knative.dev", "Service", route.name, [env(route, "EVENT_SENDER_SUBJECTS")])
                for route in consumers]
    audiences = [_target("serving.knative.dev", "Service", route.name, [env(route, "EVENT_AUDIENCE")])
                 for route in consumers]
    audiences += [_target("eventing.knative.dev", "Trigger", TRIGGER,
                          ["spec.subscriber.audience", "spec.delivery.deadLetterSink.audience"]),
                  *(_target("sources.knative.dev", "PingSource", route.name, ["spec.sink.audience"])
                    for route in consumers if PING_SOURCE in route.callers)]
    principals = []
    for route in ROUTES:
        listed = authorization_policy(route)["spec"]["rules"][0]["from"][0]["source"]["principals"]
        own = [index for index, value in enumerate(listed) if value.startswith(f"cluster.local/ns/{NAMESPACE}/")]
        if own:
            principals.append(_target("security.istio.io", "AuthorizationPolicy", route.name,
                                      [f"spec.rules.0.from.0.source.principals.{index}" for index in own]))
    source = {"kind": "ConfigMap", "name": CONFIG_MAP, "fieldPath": "metadata.namespace"}
    return [{"source": source, "targets": [target | {"options": {"delimiter": ":", "index": 2}} for target in subjects]},
            {"source": source, "targets": [target | {"options": {"delimiter": "/", "index": 2}}
                                           for target in audiences + principals]}]


def _target(group: str, kind: str, name: str, paths: list[str]) -> dict:
    return {"select": {"group": group, "kind": kind, "name": name}, "fieldPaths": paths}
