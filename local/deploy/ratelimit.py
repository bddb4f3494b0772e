"""Istio local rate limits for the public routes, from each route's `rate_limit` in the route table.

One EnvoyFilter on the ingress gateway (Istio's "Enabling Rate Limits using Envoy", local rate limit): it inserts
Envoy's local_ratelimit HTTP filter, gives each route of the shop's VirtualService (Envoy names the route after the
VirtualService's http `name`, the function's name) its own token bucket, and turns the filter's 429 into
problem+json with Retry-After. The buckets are per gateway replica, shared by every caller, like the local
gateway's (local/limits.py). It lives in the ingress gateway's namespace, so in its own kustomization
(`kubectl apply -k knative/ratelimit`): the shop's kustomization moves everything it lists into the shop's.
"""

from __future__ import annotations

import math

from local.deploy.knative import PUBLIC_HOST
from shared.errors import PROBLEM_BASE
from shared.routes import Route, public_routes

NAMESPACE = "istio-system"  # an EnvoyFilter applies to the workloads of its own namespace: the ingress gateway's
FILTER = "envoy.filters.http.local_ratelimit"
LOCAL_RATE_LIMIT = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
STAT_PREFIX = "shop_local_rate_limit"
VIRTUAL_HOST = f"{PUBLIC_HOST}:443"  # Istio names a gateway's virtual host host:port
ALWAYS = {"numerator": 100, "denominator": "HUNDRED"}


def retry_after(route: Route) -> int:
    """Whole seconds until the bucket of `route` holds a token again, at least 1."""
    return max(1, math.ceil(1 / route.rate_limit.per_second))


def token_bucket(route: Route) -> dict:
    """Envoy adds whole tokens: `per_second` of them every second (one every 1/per_second s below one a second)."""
    limit = route.rate_limit
    if limit.per_second >= 1:
        return {"max_tokens": limit.burst, "tokens_per_fill": round(limit.per_second), "fill_interval": "1s"}
    return {"max_tokens": limit.burst, "tokens_per_fill": 1, "fill_interval": f"{1 / limit.per_second:g}s"}


def _route_patch(route: Route) -> dict:
    return {
        "applyTo": "HTTP_ROUTE",
        "match": {"context": "GATEWAY", "routeConfiguration": {"vhost": {"name": VIRTUAL_HOST,
                                                                         "route": {"name": route.name}}}},
        "patch": {"operation": "MERGE", "value": {"typed_per_filter_config": {FILTER: {
            "@type": LOCAL_RATE_LIMIT,
            "stat_prefix": STAT_PREFIX,
            "token_bucket": token_bucket(route),
            "filter_enabled": {"runtime_key": "shop_rate_limit_enabled", "default_value": dict(ALWAYS)},
            "filter_enforced": {"runtime_key": "shop_rate_limit_enforced", "default_value": dict(ALWAYS)},
            "response_headers_to_add": [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                         "header": {"key": "retry-after", "value": str(retry_after(route))}}],
        }}}},
    }


def _problem_json() -> dict:
    """Envoy's own 429 body becomes the problem+json every function answers with."""
    body = {"type": PROBLEM_BASE + "too-many-requests", "title": "Too Many Requests", "status": 429,
            "detail": "Too many requests to this route: retry after the seconds in Retry-After"}
    return {
        "applyTo": "NETWORK_FILTER",
        "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {"name": CONNECTION_MANAGER}}}},
        "patch": {"operation": "MERGE", "value": {"typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                     "HttpConnectionManager",
            "local_reply_config": {"mappers": [{
                "filter": {"status_code_filter": {"comparison": {
                    "op": "EQ", "value": {"default_value": 429, "runtime_key": "shop_rate_limit_status"}}}},
                "body_format_override": {"json_format": body, "content_type": "application/problem+json"},
            }]},
        }}},
    }


def envoy_filter() -> dict:
    filter_patch = {
        "applyTo": "HTTP_FILTER",
        "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {
            "name": CONNECTION_MANAGER, "subFilter": {"name": "envoy.filters.http.router"}}}}},
        # No bucket here: the filter only limits the routes that carry their own (below).
        "patch": {"operation": "INSERT_BEFORE", "value": {"name": FILTER, "typed_config": {
            "@type": LOCAL_RATE_LIMIT, "stat_prefix": STAT_PREFIX}}},
    }
    limited = [route for route in public_routes() if route.rate_limit is not None]
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": "shop-rate-limits", "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/part-of": "shop"}},
            "spec": {"workloadSelector": {"labels": {"istio": "ingressgateway"}},
                     "configPatches": [filter_patch, _problem_json(), *map(_route_patch, limited)]}}


def kustomization() -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": NAMESPACE,
            "resources": ["envoyfilter.yaml"]}
