"""Knative Serving and Eventing resources, and the Istio routing in front of them, rendered from the route table.

Each choice below that a cluster would otherwise get wrong names the upstream source it follows; the same rules are
tested on the generated files in tests/deploy/test_knative_semantics.py.
"""

from __future__ import annotations

import re

from local import environment
from local.environment import NAMESPACE, Variable
from shared.peers import url_variable
from shared.routes import ROUTES, Route, Scaling, public_routes

IMAGE = "shop-functions"  # kustomization.yaml's `images:` maps this to the registry, pinned by digest
IMAGE_REPOSITORY = "ghcr.io/example/shop-functions"
# PLACEHOLDER, not a real image: set it to the digest `docker push` printed for the image you deploy.
IMAGE_DIGEST = "sha256:" + "0" * 64
SERVING_PORT = 8080
# Not 9090/9091: queue-proxy, the sidecar in every Knative pod, serves its own metrics there (same network).
METRICS_PORT = 9464
PUBLIC_HOST = "shop.example.com"
PUBLIC_GATEWAY = "shop-gateway"
# The TLS certificate of PUBLIC_HOST: a `kubernetes.io/tls` Secret in the Istio ingress gateway's own namespace.
TLS_SECRET = "shop-tls"
CONFIG_MAP = "shop-config"  # hand-written (knative/config.yaml); the source of the namespace in every URL
PUBLISHES_EVENTS = "shop.example.com/publishes-events"
# knative/pkg webhook/psbinding/psbinding.go: in inclusion mode the binding webhook only admits objects (and
# namespaces) carrying this label, so a SinkBinding subject without it loses K_SINK on its next apply.
BINDING_INCLUDE = "bindings.knative.dev/include"
# Which Broker the shop's events go through: one of BROKERS.
BROKER_CLASS = "Kafka"
KAFKA_BROKER_CONFIG = "kafka-broker-config"
KAFKA_BOOTSTRAP_SERVERS = "my-cluster-kafka-bootstrap.kafka:9092"  # PLACEHOLDER: your Kafka cluster
SECRETS = "shop-secrets"  # the shop's secrets; each function's env names only the keys its code reads
SERVICE_KEYS = "shop-service-keys"  # every function's public service key, `<name>.pem` (python -m local.service_keys)
EVENTING_OIDC = "shop-eventing-oidc"  # the cluster's ServiceAccount issuer and its JWKS, for event sender tokens
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
TMP = {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}  # the only writable path: the root filesystem is read-only
TMP_MOUNT = {"name": TMP["name"], "mountPath": "/tmp"}
# Pod Security "restricted" for the container (queue-proxy, the other container of a Knative pod, already is).
SECURITY_CONTEXT = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def domain(route: Route) -> str:
    return route.source.split("/")[1]


def cluster_local_host(name: str, namespace: str = NAMESPACE) -> str:
    """The host Knative's local gateway answers for Service `name`.

    knative/networking pkg/ingress/ingress.go (ExpandedHosts) serves `name.ns.svc.cluster.local`, `name.ns.svc`
    and `name.ns` only: a bare `name` gets a 404."""
    return f"{name}.{namespace}.svc.cluster.local"


def target_utilization(scaling: Scaling) -> str:
    """The `target-utilization-percentage` that makes Knative aim for exactly `scaling.target` requests per replica.

    knative/serving pkg/reconciler/autoscaling/resources/target.go: the target is total x utilization, where total
    is containerConcurrency (without a `target` annotation) and utilization defaults to 70 %; leaving it at its
    default would discount the route table's target a second time."""
    return f"{100 * scaling.target / scaling.container_concurrency:.6f}".rstrip("0").rstrip(".")


def function_env(route: Route) -> list[dict]:
    """The function's variables (local.environment decides which, for every platform), with their sources here."""
    def value(variable: Variable) -> dict:
        match variable.kind:
            case environment.SOURCE | environment.LITERAL:
                return {"value": variable.value}
            case environment.PEER:
                return {"value": f"http://{cluster_local_host(variable.value)}"}
            case environment.SECRET:
                return {"valueFrom": {"secretKeyRef": {"name": SECRETS, "key": variable.name}}}
            case environment.OWN_KEY:  # its own Secret: no other function's pod can mount it
                return {"valueFrom": {"secretKeyRef": {"name": service_key_secret(route.name), "key": "private.pem"}}}
            case environment.CALLER_KEY:
                return {"valueFrom": {"configMapKeyRef": {"name": SERVICE_KEYS, "key": f"{variable.value}.pem"}}}
            case environment.SENDER_ISSUER:
                return {"valueFrom": {"configMapKeyRef": {"name": EVENTING_OIDC, "key": "issuer"}}}
            case environment.SENDER_JWKS:
                return {"valueFrom": {"configMapKeyRef": {"name": EVENTING_OIDC, "key": "jwks.json"}}}
        raise ValueError(f"no source for {variable}")

    given = [{"name": variable.name, **value(variable)} for variable in environment.variables(route)
             if variable.kind != environment.SINK]  # K_SINK: the SinkBinding injects it
    return given + [
        # One async worker per container: Knative scales replicas; concurrency inside is the event loop's.
        {"name": "WORKERS", "value": "1"},
        {"name": "THREADS", "value": str(route.scaling.container_concurrency)},
        {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
    ]


def service_key_secret(name: str) -> str:
    return f"{name}-service-key"


def _autoscaling(scaling: Scaling) -> dict:
    annotations = {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target-utilization-percentage": target_utilization(scaling),
        "autoscaling.knative.dev/min-scale": str(scaling.min_scale),
        "autoscaling.knative.dev/max-scale": str(scaling.max_scale),
    }
    if scaling.scale_down_delay:
        annotations["autoscaling.knative.dev/scale-down-delay"] = scaling.scale_down_delay
    return annotations


def service(route: Route) -> dict:
    scaling = route.scaling
    # Every function is cluster-local: the only public entry is the VirtualService on PUBLIC_HOST (routing()).
    labels = {"app.kubernetes.io/part-of": "shop", "shop.example.com/domain": domain(route),
              "networking.knative.dev/visibility": "cluster-local"}
    if route.publishes:
        labels |= {PUBLISHES_EVENTS: "true", BINDING_INCLUDE: "true"}
    env = function_env(route)
    env_from = [{"configMapRef": {"name": CONFIG_MAP}}]
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
                    **_autoscaling(scaling),
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "containerConcurrency": scaling.container_concurrency,
                "timeoutSeconds": 30,
                "enableServiceLinks": False,
                "serviceAccountName": route.name,  # its own mTLS principal (local/deploy/identity.py)
                "automountServiceAccountToken": False,  # no function talks to the Kubernetes API
                "containers": [{
                    "name": "function",
                    "image": IMAGE,
                    "ports": [{"name": "http1", "containerPort": SERVING_PORT}],
                    "env": env,
                    "envFrom": env_from,
                    "resources": RESOURCES,
                    # No periodSeconds: knative/serving pkg/queue/readiness/probe.go probes every 50 ms during a
                    # cold start only when the period is 0; any period turns that off (up to a period's delay).
                    "readinessProbe": {"tcpSocket": {"port": SERVING_PORT}},
                    "securityContext": SECURITY_CONTEXT,
                    "volumeMounts": [TMP_MOUNT],
                }],
                "volumes": [TMP],
            },
        }},
    }


def _service_ref(name: str) -> dict:
    # The audience its sender tokens are for: a Knative Service announces none (`authentication-oidc`).
    return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name},
            "audience": environment.event_audience(name)}


def _configmap_ref(name: str, namespace: str | None = None) -> dict:
    # Without a namespace the Broker's own applies (knative/eventing pkg/apis/eventing/v1/broker_defaults.go).
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, **({"namespace": namespace} if namespace else {})}


# Broker classes, by how they keep an event between its publisher and its Trigger's subscriber.
BROKERS = {
    # Durable: events are records in a replicated Kafka topic, so a dispatcher restart loses nothing. Needs Knative's
    # Kafka broker (eventing-kafka-broker) and a Kafka cluster at KAFKA_BOOTSTRAP_SERVERS.
    "Kafka": _configmap_ref(KAFKA_BROKER_CONFIG),
    # Trials only: backed by the cluster's default channel, the in-memory InMemoryChannel unless configured
    # otherwise, which loses every event in flight when its dispatcher restarts.
    "MTChannelBasedBroker": _configmap_ref("config-br-default-channel", "knative-eventing"),
}


def broker() -> list[dict]:
    """The Broker of BROKER_CLASS, with the ConfigMap it reads when that lives in the shop's namespace."""
    documents = [{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                  "metadata": {"name": "default", "namespace": NAMESPACE,
                               "annotations": {"eventing.knative.dev/broker.class": BROKER_CLASS}},
                  "spec": {"config": BROKERS[BROKER_CLASS],
                           "delivery": {"retry": 5, "backoffPolicy": "exponential", "backoffDelay": "PT0.5S"}}}]
    if BROKER_CLASS == "Kafka":
        documents.append({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": KAFKA_BROKER_CONFIG, "namespace": NAMESPACE},
                          "data": {"bootstrap.servers": KAFKA_BOOTSTRAP_SERVERS, "default.topic.partitions": "10",
                                   "default.topic.replication.factor": "3"}})
    return documents


def eventing() -> list[dict]:
    return [
        *broker(),
        # Injects K_SINK (the broker's URL) into every Service labelled as an event publisher.
        {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
         "metadata": {"name": "orders-events", "namespace": NAMESPACE},
         "spec": {"subject": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                              "selector": {"matchLabels": {PUBLISHES_EVENTS: "true"}}},
                  "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}}},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
         "metadata": {"name": environment.TRIGGER, "namespace": NAMESPACE},
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


def routing() -> list[dict]:
    """The shop's one public entry: an Istio Gateway terminating TLS and a VirtualService sending each public path
    to its (cluster-local) Service through Knative's local gateway.

    Each match rewrites the authority to the Service's cluster-local host, which is how Knative's ingress picks the
    Service. Retries are off, as net-istio sets them for Knative's own routes (net-istio
    pkg/reconciler/ingress/resources/virtual_service.go: "Override default istio behaviour of retrying twice"):
    Istio would otherwise send a POST or PATCH again whenever a function answers 503.
    """
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": PUBLIC_GATEWAY, "namespace": NAMESPACE},
               "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                   {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": [PUBLIC_HOST],
                    "tls": {"mode": "SIMPLE", "credentialName": TLS_SECRET}},
                   {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [PUBLIC_HOST],
                    "tls": {"httpsRedirect": True}},
               ]}}
    http = []
    for route in sorted(public_routes(), key=lambda r: (-r.path.count("/"), r.path, r.method)):
        regex = "^" + re.sub(r"\{\w+\}", "[^/]+", route.path) + "$"  # RE2, as Envoy matches
        http.append({
            "name": route.name,
            "match": [{"uri": {"regex": regex}, "method": {"exact": route.method}}],
            "rewrite": {"authority": cluster_local_host(route.name)},
            "route": [{"destination": {"host": "knative-local-gateway.istio-system.svc.cluster.local",
                                       "port": {"number": 80}}}],
            "retries": {"attempts": 0},
        })
    virtual_service = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                       "metadata": {"name": "shop-api", "namespace": NAMESPACE},
                       "spec": {"hosts": [PUBLIC_HOST], "gateways": [PUBLIC_GATEWAY], "http": http}}
    return [gateway, virtual_service]


def namespace_replacement() -> dict:
    """A kustomize replacement writing the namespace the kustomization deploys to into every in-cluster URL.

    (Not the Downward API: Knative refuses `fieldRef` env values unless the cluster turns on
    `kubernetes.podspec-fieldref`, off by default: knative/serving pkg/apis/config/features.go.)"""
    targets = [{"select": {"group": "serving.knative.dev", "kind": "Service", "name": route.name},
                "fieldPaths": [f"spec.template.spec.containers.[name=function].env.[name={url_variable(peer)}].value"
                               for peer in route.calls]}
               for route in ROUTES if route.calls]
    targets.append({"select": {"group": "networking.istio.io", "kind": "VirtualService", "name": "shop-api"},
                    "fieldPaths": [f"spec.http.[name={route.name}].rewrite.authority" for route in public_routes()]})
    # The namespace is the second dot-separated part of both `http://name.ns.svc…` and `name.ns.svc…`.
    return {"source": {"kind": "ConfigMap", "name": CONFIG_MAP, "fieldPath": "metadata.namespace"},
            "targets": [target | {"options": {"delimiter": ".", "index": 1}} for target in targets]}


def migration_job() -> dict:
    """The migration step of a deploy, run before the Services: every domain's SQL migrations applied to
    DATABASE_URL and the catalog's indexes created on MONGODB_URL, from the image the functions run (which only
    check the schema version, and answer 503 naming this Job while it is behind)."""
    labels = {"app.kubernetes.io/part-of": "shop"}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "shop-migrate", "namespace": NAMESPACE, "labels": labels},
            "spec": {"backoffLimit": 4, "ttlSecondsAfterFinished": 86400, "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "shop-migrate", **labels}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [{
                        "name": "migrate",
                        "image": IMAGE,
                        "command": ["python", "-m", "local.migrate"],
                        "env": [*({"name": key, "valueFrom": {"secretKeyRef": {"name": "shop-secrets", "key": key}}}
                                  for key in ("DATABASE_URL", "MONGODB_URL")),
                                # The config map is applied with the Services, after this Job on a first deploy:
                                # without it the settings' default database ("shop") is the one indexed.
                                {"name": "MONGODB_DATABASE", "valueFrom": {"configMapKeyRef": {
                                    "name": CONFIG_MAP, "key": "MONGODB_DATABASE", "optional": True}}}],
                        "resources": RESOURCES,
                        "securityContext": SECURITY_CONTEXT,
                        "volumeMounts": [TMP_MOUNT],
                    }],
                    "volumes": [TMP],
                }}}}


def _images() -> list[dict]:
    return [{"name": IMAGE, "newName": IMAGE_REPOSITORY, "digest": IMAGE_DIGEST}]


def kustomization(resources: list[str], replacements: list[dict] = ()) -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": NAMESPACE,
        "resources": resources, "images": _images(), "replacements": [namespace_replacement(), *replacements],
    }


def migration_kustomization() -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": NAMESPACE,
            "resources": ["job.yaml"], "images": _images()}
