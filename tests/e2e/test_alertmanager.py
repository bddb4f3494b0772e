"""Alerts reach a person: the generated Alertmanager configuration routes the alert rules by severity to the
shop's alert webhook, which e-mails each notification group through the notification ledger."""

from __future__ import annotations

import copy
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from local.deploy.observability import ALERT_EMAILS, alert_rules, alert_webhook_url, alertmanager_config
from local.processes import ROOT, free_port, spawn, stop, wait_for_port
from shared.routes import route
from tests.e2e.debian_tools import debian_binary
from tests.support import ADMIN, bearer, token, unique

CONFIG = ROOT / "knative" / "observability" / "alertmanager.yml"
RULES = {rule["alert"]: rule for group in alert_rules()["groups"] for rule in group["rules"]}


def test_the_committed_alertmanager_config_is_the_generated_one():
    assert yaml.safe_load(CONFIG.read_text()) == alertmanager_config()


def test_the_alertmanager_config_passes_amtool():
    amtool = debian_binary("amtool", "prometheus-alertmanager")

    result = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_each_severity_of_the_alert_rules_goes_to_its_own_webhook_receiver_with_a_token():
    config = alertmanager_config()
    severities = {rule["labels"]["severity"] for rule in RULES.values()}

    routes = {tuple(child["matchers"]): child["receiver"] for child in config["route"]["routes"]}

    assert routes == {(f'severity="{severity}"',): f"shop-{severity}" for severity in severities}
    for receiver in config["receivers"]:
        [hook] = receiver["webhook_configs"]
        url = urlsplit(hook["url"])
        assert url.hostname == "notify-alert-webhook.shop.svc.cluster.local"  # Alertmanager is in another namespace
        assert url.path == route("notify-alert-webhook").path
        assert parse_qs(url.query)["to"] == [ALERT_EMAILS[receiver["name"].removeprefix("shop-")]]
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"]["type"] == "Bearer"


def test_alert_webhook_url_quotes_the_recipient():
    url = alert_webhook_url("on.call+shop@example.com", host="webhook.test")

    assert parse_qs(urlsplit(url).query)["to"] == ["on.call+shop@example.com"]  # a bare + would read as a space


def test_a_page_and_a_ticket_fired_at_alertmanager_reach_their_recipients_by_email(shop, gateway, tmp_path):
    recipients = {"page": f"{unique('oncall')}@example.com", "ticket": f"{unique('team')}@example.com"}
    config = _for_the_session_shop(alertmanager_config(), shop, recipients, tmp_path)

    with running_alertmanager(config, tmp_path) as (alertmanager, log):
        fired = httpx.post(f"{alertmanager}/api/v2/alerts", timeout=10, json=[
            _alert("ShopHighErrorRate", function="catalog-get-product"), _alert("ShopOutboxRowsDead")])
        assert fired.status_code == 200, fired.text

        page = _wait_for_email(gateway, recipients["page"], log)
        ticket = _wait_for_email(gateway, recipients["ticket"], log)

    assert page["subject"] == "[PAGE] FIRING: ShopHighErrorRate function=catalog-get-product (1 firing)"
    assert ticket["subject"].startswith("[TICKET] FIRING: ShopOutboxRowsDead")
    assert (page["channel"], page["status"], page["attempts"]) == ("email", "sent", 1)


def test_a_group_alertmanager_sends_again_is_emailed_once_and_its_resolution_once_more(shop, gateway):
    recipient = f"{unique('oncall')}@example.com"
    group = _group("ShopOutboxBacklogOld", "firing")

    first = _post_to_webhook(shop, recipient, group, ADMIN)
    again = _post_to_webhook(shop, recipient, group, ADMIN)
    resolved = _post_to_webhook(shop, recipient, _group("ShopOutboxBacklogOld", "resolved"), ADMIN)

    assert first.status_code == again.status_code == resolved.status_code == 202, first.text
    assert first.json()["id"] == again.json()["id"] != resolved.json()["id"]
    ledger = gateway.get("/notifications", params={"recipient": recipient}, headers=ADMIN).json()["items"]
    assert sorted((entry["subject"].split(":")[0], entry["status"], entry["attempts"]) for entry in ledger) == [
        ("[PAGE] FIRING", "sent", 1), ("[PAGE] RESOLVED", "sent", 1)]


def test_a_group_with_nul_characters_is_emailed_with_them_replaced_not_refused(shop, gateway):
    recipient = f"{unique('oncall')}@example.com"
    group = _group("ShopOutboxBacklogOld", "firing")
    group["receiver"] += "\x00"
    group["groupLabels"]["alertname"] += "\x00"  # into the subject
    group["alerts"][0]["annotations"] = {**group["alerts"][0]["annotations"], "summary": "stuck\x00 rows"}

    response = _post_to_webhook(shop, recipient, group, ADMIN)

    assert response.status_code == 202, response.text
    [entry] = gateway.get("/notifications", params={"recipient": recipient}, headers=ADMIN).json()["items"]
    assert entry["status"] == "sent" and "ShopOutboxBacklogOld\ufffd" in entry["subject"]


def test_the_alert_webhook_wants_an_admin_token_and_a_recipient(shop):
    group = _group("ShopOutboxBacklogOld", "firing")

    assert _post_to_webhook(shop, "oncall@example.com", group, {}).status_code == 401
    assert _post_to_webhook(shop, "oncall@example.com", group, bearer("alice")).status_code == 403
    assert _post_to_webhook(shop, "not-an-address", group, ADMIN).status_code == 422
    assert _post_to_webhook(shop, "oncall@example.com", {"alerts": []}, ADMIN).status_code == 422


@contextmanager
def running_alertmanager(config: dict, tmp_path: Path):
    """A real Alertmanager (Debian's package) on a free port, alone (no HA cluster), stopped afterwards."""
    binary = debian_binary("prometheus-alertmanager", "prometheus-alertmanager")
    config_file, log = tmp_path / "alertmanager.yml", tmp_path / "alertmanager.log"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    with open(log, "ab") as log_file:
        process = spawn([binary, f"--config.file={config_file}", f"--storage.path={tmp_path / 'data'}",
                         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
                        log_file=log_file)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop([process])


def _for_the_session_shop(config: dict, shop, recipients: dict[str, str], tmp_path: Path) -> dict:
    """The generated config, its receivers pointed at the session's webhook function with a token file of its
    secret, and its group waits shortened from minutes to a second."""
    config = copy.deepcopy(config)
    token_file = tmp_path / "token"
    token_file.write_text(token("alertmanager", "admin"))
    host = f"127.0.0.1:{shop.function_ports['notify-alert-webhook'][0]}"
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = alert_webhook_url(recipients[receiver["name"].removeprefix("shop-")], host=host)
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    for level in [config["route"], *config["route"]["routes"]]:
        level["group_wait"] = "1s"
    return config


def _alert(name: str, **labels: str) -> dict:
    """One of the alert rules' alerts as Prometheus sends it to Alertmanager's API."""
    rule = RULES[name]
    return {"labels": {"alertname": name, **rule["labels"], **labels},
            "annotations": {"summary": rule["annotations"]["summary"]},
            "startsAt": datetime.now(timezone.utc).isoformat(), "generatorURL": "http://prometheus.test/graph"}


def _group(name: str, status: str) -> dict:
    """Alertmanager's webhook payload for a group of one alert of the rule `name`."""
    labels = {"alertname": name, **RULES[name]["labels"]}
    return {"version": "4", "groupKey": f'{{}}/{{severity="page"}}:{{alertname="{name}"}}', "truncatedAlerts": 0,
            "status": status, "receiver": "shop-page", "groupLabels": {"alertname": name}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://alertmanager.test",
            "alerts": [{"status": status, "labels": labels, "annotations": RULES[name]["annotations"],
                        "startsAt": "2026-01-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus.test/graph", "fingerprint": "0123456789abcdef"}]}


def _post_to_webhook(shop, recipient: str, body: dict, headers: dict) -> httpx.Response:
    port = shop.function_ports["notify-alert-webhook"][0]
    return httpx.post(f"http://127.0.0.1:{port}/internal/alerts", params={"to": recipient}, json=body,
                      headers=headers, timeout=10)


def _wait_for_email(gateway: httpx.Client, recipient: str, log: Path, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = gateway.get("/notifications", params={"recipient": recipient}, headers=ADMIN).json()["items"]
        if entries and entries[0]["status"] == "sent":
            assert len(entries) == 1, entries
            return entries[0]
        time.sleep(0.5)
    raise AssertionError(f"no e-mail to {recipient} in the ledger after {timeout:.0f} s; Alertmanager's log ends: "
                         f"{log.read_text()[-3000:]}")

