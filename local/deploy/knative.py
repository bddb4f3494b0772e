"""Knative Serving and Eventing resources, rendered from the route table."""

from __future__ import annotations

import re

from shared.routes import Route, public_routes

NAMESPACE = "shop"
IMAGE = "shop-functions"  # kustomization.yaml's `images:` maps this to the registry
SERVING_PORT = 8080
# Not 9090/9091: queue-proxy, the sidecar in every Knative pod, serves its own metrics there (same network).
METRICS_PORT = 9464
PUBLIC_HOST = "shop.example.com"
PUBLISHES_EVENTS = "shop.example.com/publishes-events"
EVENT_PUBLISHERS = {"orders-create-order", "orders-outbox-relay", "notify-replay-dead-letter"}
# The secret keys each domain needs: a function gets only its own domain's store credentials.
DOMAIN_SECRETS = {"catalog": ["MONGODB_URL"], "cart": ["REDIS_URL"], "orders": ["DATABASE_URL"],
                  "notify": ["DATABASE_URL"]}
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}


def domain(route: Route) -> str:
    return route.source.split("/")[1]


def function_env(route: Route) -> list[dict]:
    """What selects and tunes the function in the shared image."""
    return [
        {"name": "FUNCTION_SOURCE", "value": route.source},
        {"name": "FUNCTION_TARGET", "value": route.target},
        {"name": "FUNCTION_SIGNATURE_TYPE", "value": route.signature},
        # One async worker per container: Knative scales replicas; concurrency inside is the event loop's.
        {"name": "WORKERS", "value": "1"},
        {"name": "THREADS", "value": str(route.scaling.container_concurrency)},
        {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
    ]


def service(route: Route) -> dict:
    scaling = route.scaling
    labels = {"app.kubernetes.io/part-of": "shop", "shop.example.com/domain": domain(route)}
    if route.visibility == "cluster-local":
        labels["networking.knative.dev/visibility"] = "cluster-local"
    if route.name in EVENT_PUBLISHERS:
        labels[PUBLISHES_EVENTS] = "true"
    secrets = ["SHOP_JWT_SECRET", *DOMAIN_SECRETS[domain(route)]]
    env = function_env(route) + [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": "shop-secrets", "key": key}}} for key in secrets]
    env_from = [{"configMapRef": {"name": "shop-config"}}]
    if domain(route) == "notify":
        env_from.append({"secretRef": {"name": "shop-aws", "optional": True}})
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": route.name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"template": {
            "metadata": {
                "labels": {"app.kubernetes.io/name": route.name, "app.kubernetes.io/part-of": "shop"},
                "annotations": {
                    "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                    "autoscaling.knative.dev/metric": "concurrency",
                    "autoscaling.knative.dev/target": str(scaling.target),
                    "autoscaling.knative.dev/min-scale": str(scaling.min_scale),
                    "autoscaling.knative.dev/max-scale": str(scaling.max_scale),
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "containerConcurrency": scaling.container_concurrency,
                "timeoutSeconds": 30,
                "enableServiceLinks": False,
                "containers": [{
                    "name": "function",
                    "image": IMAGE,
                    "ports": [{"name": "http1", "containerPort": SERVING_PORT}],
                    "env": env,
                    "envFrom": env_from,
                    "resources": RESOURCES,
                    "readinessProbe": {"tcpSocket": {"port": SERVING_PORT}, "periodSeconds": 2},
                    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]},
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                }],
            },
        }},
    }


def _service_ref(name: str) -> dict:
    return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}}


def eventing() -> list[dict]:
    return [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": {"name": "default", "namespace": NAMESPACE},
         "spec": {"delivery": {"retry": 5, "backoffPolicy": "exponential", "backoffDelay": "PT0.5S"}}},
        # Injects K_SINK (the broker's URL) into every Service labelled as an event publisher.
        {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
         "metadata": {"name": "orders-events", "namespace": NAMESPACE},
         "spec": {"subject": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                              "selector": {"matchLabels": {PUBLISHES_EVENTS: "true"}}},
                  "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}}},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
         "metadata": {"name": "notify-order-created", "namespace": NAMESPACE},
         "spec": {"broker": "default",
                  "filter": {"attributes": {"type": "com.example.shop.order.created"}},
                  "subscriber": _service_ref("notify-order-created"),
                  "delivery": {"retry": 8, "backoffPolicy": "exponential", "backoffDelay": "PT1S",
                               "deadLetterSink": _service_ref("notify-dead-letter")}}},
        # Every minute: the sweeps that settle what dead instances left (orders, then reservations).
        *({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
           "metadata": {"name": name, "namespace": NAMESPACE},
           "spec": {"schedule": "* * * * *", "contentType": "application/json", "data": "{}",
                    "sink": _service_ref(name)}} for name in ("orders-outbox-relay", "catalog-expire-reservations")),
    ]


def routing() -> dict:
    """Public paths to their Services through Knative's local gateway (Istio networking layer).

    Each match rewrites the authority to the Service's cluster-local host, which is how Knative's own
    ingress picks the Service; every Service also keeps its own Knative URL.
    """
    http = []
    for route in sorted(public_routes(), key=lambda r: (-r.path.count("/"), r.path, r.method)):
        regex = "^" + re.sub(r"\{\w+\}", "[^/]+", route.path) + "$"  # RE2, as Envoy matches
        http.append({
            "name": route.name,
            "match": [{"uri": {"regex": regex}, "method": {"exact": route.method}}],
            "rewrite": {"authority": f"{route.name}.{NAMESPACE}.svc.cluster.local"},
            "route": [{"destination": {"host": "knative-local-gateway.istio-system.svc.cluster.local",
                                       "port": {"number": 80}}}],
        })
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "shop-api", "namespace": NAMESPACE},
            "spec": {"hosts": [PUBLIC_HOST], "gateways": ["knative-serving/knative-ingress-gateway"], "http": http}}
