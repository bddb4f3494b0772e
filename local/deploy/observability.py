"""Prometheus alert rules, the Alertmanager configuration that routes them, and the Grafana dashboard, over the
metrics every function exports."""

from __future__ import annotations

from urllib.parse import quote

from local.deploy.knative import NAMESPACE

RATE = "5m"
# Who is told, per severity: a page now (and again hourly while it fires), a ticket in a slower digest.
ALERT_EMAILS = {"page": "oncall@example.com", "ticket": "shop-team@example.com"}
# The admin bearer token Alertmanager sends, from a Secret it mounts (kube-prometheus mounts the Secrets listed in
# `alertmanager.spec.secrets` under /etc/alertmanager/secrets/<name>/).
ALERT_TOKEN_FILE = "/etc/alertmanager/secrets/shop-alertmanager/token"


def alert_rules() -> dict:
    def alert(name, expr, duration, severity, summary):
        return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
                "annotations": {"summary": summary}}

    return {"groups": [{"name": "shop", "rules": [
        alert("ShopHighErrorRate",
              f'sum by (function) (rate(shop_http_requests_total{{status=~"5.."}}[{RATE}])) / '
              f"sum by (function) (rate(shop_http_requests_total[{RATE}])) > 0.02",
              "5m", "page", "{{ $labels.function }} answers more than 2% of requests with 5xx"),
        alert("ShopSlowP99",
              f"histogram_quantile(0.99, sum by (function, le) (rate(shop_http_request_duration_seconds_bucket[{RATE}])))"
              " > 1", "10m", "ticket", "{{ $labels.function }} p99 latency is above 1 s"),
        alert("ShopOutboxBacklogOld", "max(shop_outbox_oldest_pending_age_seconds) > 600", "5m", "page",
              "An order event or stock release has waited more than 10 minutes in the outbox"),
        alert("ShopOutboxRowsDead", "max(shop_outbox_dead) > 0", "0m", "ticket",
              "Outbox rows gave up after the maximum attempts: list them at GET /admin/outbox?state=dead, fix the "
              "cause, re-queue them with POST /admin/outbox/{id}/requeue"),
        alert("ShopEventsDeadLettered", "increase(shop_dead_letters_total[15m]) > 0", "0m", "ticket",
              "The broker dead-lettered {{ $value }} events of type {{ $labels.type }}"),
        alert("ShopPaymentFailuresHigh",
              f'sum(rate(shop_payments_total{{outcome="error"}}[{RATE}])) / sum(rate(shop_payments_total[{RATE}])) > 0.1',
              "10m", "page", "More than 10% of card charges fail at the processor"),
    ]}]}


def alert_webhook_url(email: str, host: str = f"notify-alert-webhook.{NAMESPACE}.svc.cluster.local") -> str:
    """The shop's alert webhook (cluster-local), e-mailing `email`; Alertmanager runs in another namespace."""
    return f"http://{host}/internal/alerts?to={quote(email, safe='@')}"


def alertmanager_config() -> dict:
    """Alertmanager's configuration: alerts routed by their `severity` label (alert_rules) to e-mails sent by the
    shop's own notification ledger, through its webhook function."""
    def receiver(severity: str) -> dict:
        return {"name": f"shop-{severity}", "webhook_configs": [{
            "url": alert_webhook_url(ALERT_EMAILS[severity]), "send_resolved": True,
            "max_alerts": 20,  # a group's e-mail lists at most this many alerts, and says how many it left out
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": ALERT_TOKEN_FILE}}}]}

    # A group is e-mailed when it starts firing, when its alerts change and when it resolves; the ledger dedupes
    # Alertmanager's repeats of an unchanged group (repeat_interval), so they send nothing.
    return {
        "route": {
            "receiver": "shop-ticket",  # an alert without a known severity is still seen, at the slower pace
            "group_by": ["alertname", "function"],
            "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
            "routes": [
                {"matchers": ['severity="page"'], "receiver": "shop-page", "group_wait": "30s", "group_interval": "5m"},
                {"matchers": ['severity="ticket"'], "receiver": "shop-ticket", "group_wait": "5m",
                 "group_interval": "30m"},
            ],
        },
        "receivers": [receiver("page"), receiver("ticket")],
    }


def _panel(panel_id: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int, w: int = 12) -> dict:
    return {"id": panel_id, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": w, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + index), "expr": expr, "legendFormat": legend}
                        for index, (expr, legend) in enumerate(exprs)]}


def dashboard() -> dict:
    quantile = ("histogram_quantile({q}, sum by (function, le) "
                f"(rate(shop_http_request_duration_seconds_bucket[{RATE}])))")
    panels = [
        _panel(1, "Requests per second by endpoint",
               [(f"sum by (function) (rate(shop_http_requests_total[{RATE}]))", "{{function}}")], "reqps", 0, 0),
        _panel(2, "Error rate (5xx) by endpoint",
               [(f'sum by (function) (rate(shop_http_requests_total{{status=~"5.."}}[{RATE}])) / '
                 f"sum by (function) (rate(shop_http_requests_total[{RATE}]))", "{{function}}")], "percentunit", 12, 0),
        _panel(3, "Latency p50 / p95 / p99 by endpoint",
               [(quantile.format(q=q), f"{{{{function}}}} p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], "s", 0, 8, 24),
        # `function` on process metrics comes from the scrape config (the pod's serving.knative.dev/service label).
        _panel(4, "Replicas per function", [('count by (function) (up{namespace="shop"} == 1)', "{{function}}")],
               "short", 0, 16),
        _panel(5, "Cold starts: processes started in the last 15 minutes",
               [('count by (function) (process_start_time_seconds{namespace="shop"} > time() - 900)', "{{function}}")],
               "short", 12, 16),
        _panel(6, "Searches per second", [(f"sum(rate(shop_http_requests_total{{function=\"catalog-search-products\"}}[{RATE}]))",
                                           "searches")], "reqps", 0, 24, 8),
        _panel(7, "Active carts", [("max(shop_cart_active_carts)", "active carts")], "short", 8, 24, 8),
        _panel(8, "Orders per minute", [(f'sum(rate(shop_orders_total{{outcome="created"}}[{RATE}])) * 60', "orders")],
               "short", 16, 24, 8),
        _panel(9, "Payment success", [(f'sum(rate(shop_payments_total{{outcome="approved"}}[{RATE}])) / '
                                       f"sum(rate(shop_payments_total[{RATE}]))", "approved")], "percentunit", 0, 32, 8),
        _panel(10, "Notifications sent / failed", [
            (f"sum by (outcome) (rate(shop_notifications_total[{RATE}]))", "{{outcome}}")], "reqps", 8, 32, 8),
        _panel(11, "Outbox backlog", [("max(shop_outbox_pending)", "pending rows"),
                                      ("max(shop_outbox_oldest_pending_age_seconds)", "oldest (s)"),
                                      ("max(shop_outbox_dead)", "dead rows")], "short", 16, 32, 8),
        _panel(12, "CPU seconds per request by endpoint",
               [(f"sum by (function) (rate(process_cpu_seconds_total{{namespace=\"shop\"}}[{RATE}])) / "
                 f"sum by (function) (rate(shop_http_requests_total[{RATE}]))", "{{function}}")], "s", 0, 40, 24),
    ]
    return {
        "title": "Serverless shop", "uid": "serverless-shop", "schemaVersion": 39, "version": 1,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "tags": ["shop", "knative"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }
