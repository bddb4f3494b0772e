"""Prometheus alert rules and the Grafana dashboard, over the metrics every function exports."""

from __future__ import annotations

RATE = "5m"


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
