"""Message templates: `$name` placeholders filled from a context (string.Template, no code in templates)."""

from __future__ import annotations

from string import Template

from shared.errors import Unprocessable

TEMPLATES: dict[str, tuple[str, str]] = {
    "order-confirmation": (
        "Your order $order_id is confirmed",
        "Thank you for your order $order_id.\n\n$lines\n\nTotal: $total $currency\n",
    ),
    "order-shipped": ("Your order $order_id is on its way", "Your order $order_id has shipped.\n"),
    "welcome": ("Welcome to the shop, $name", "Hello $name, thank you for signing up.\n"),
}


def render(template_id: str, context: dict) -> tuple[str, str]:
    """(subject, body) of a template; unknown templates and missing placeholders are the caller's error."""
    if template_id not in TEMPLATES:
        raise Unprocessable(f"Unknown template '{template_id}'", errors=[{
            "field": "body.template_id", "type": "unknown_template", "message": f"one of {sorted(TEMPLATES)}"}])
    subject, body = TEMPLATES[template_id]
    try:
        return Template(subject).substitute(context), Template(body).substitute(context)
    except KeyError as missing:
        raise Unprocessable(f"The template '{template_id}' needs {missing} in its context", errors=[{
            "field": f"body.context.{missing.args[0]}", "type": "missing", "message": "needed by the template"}]) from None


def order_confirmation(order) -> tuple[str, str]:
    lines = "\n".join(f"  {line.quantity} x {line.product_name} ({line.product_sku}): {line.line_total:.2f}"
                      for line in order.items)
    return render("order-confirmation", {"order_id": order.order_id, "lines": lines,
                                         "total": f"{order.total_price:.2f}", "currency": order.currency})


def alert_group(group) -> tuple[str, str]:
    """(subject, body) of one Alertmanager notification group: what fires, since when, and where to look."""
    firing = [alert for alert in group.alerts if alert.status == "firing"]
    resolved = [alert for alert in group.alerts if alert.status == "resolved"]
    severity = group.common_labels.get("severity", "alert").upper()
    labels = dict(group.group_labels)
    name = labels.pop("alertname", group.receiver)
    named = " ".join([name, *(f"{key}={value}" for key, value in sorted(labels.items()))])
    counts = f"{len(firing)} firing" + (f", {len(resolved)} resolved" if resolved else "")
    subject = f"[{severity}] {group.status.upper()}: {named} ({counts})"[:200]
    sections = [f"{counts}, sent by Alertmanager to its receiver {group.receiver}.", ""]
    for alert in firing + resolved:
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
        since = alert.starts_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        sections.append(f"[{alert.status}] {alert.labels.get('alertname', 'alert')} since {since}")
        if summary:
            sections.append(f"  {summary}")
        sections.append("  labels: " + ", ".join(f"{key}={value}" for key, value in sorted(alert.labels.items())))
        if alert.generator_url:
            sections.append(f"  source: {alert.generator_url}")
        sections.append("")
    if group.truncated_alerts:
        sections.append(f"{group.truncated_alerts} more alerts in this group are not listed (max_alerts).")
    if group.external_url:
        sections.append(f"Alertmanager: {group.external_url}")
    return subject, "\n".join(sections).rstrip() + "\n"
