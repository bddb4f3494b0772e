"""The dead-letter sink keeps what the broker gave up on (without logging personal data); admins list and replay it."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from local.processes import free_port
from tests.functions.test_notify import deliver, ledger, notifications_logged, order_event_data
from tests.support import ADMIN, assert_problem, bearer, function_alone, sender_headers, unique

ORDER_CREATED = "com.example.shop.order.created"


@pytest.fixture(scope="module")
def sink_url(shop):
    return shop.functions["notify-dead-letter"].url


@pytest.fixture(scope="module")
def notify_url(shop):
    return shop.functions["notify-order-created"].url


def dead_letter(sink_url, data, event_id, event_type=ORDER_CREATED, **headers):
    """The broker giving up on an event: it posts it to the dead-letter sink, with Knative's error extensions."""
    body = {"content": data} if isinstance(data, bytes) else {"json": data}
    response = httpx.post(sink_url, timeout=10, **body, headers={
        "ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/orders", "ce-type": event_type,
        "ce-time": "2026-11-25T13:40:00Z", "ce-knativeerrorcode": "503",
        "ce-knativeerrordest": "http://notify-order-created.shop.svc.cluster.local",
        "content-type": "application/octet-stream" if isinstance(data, bytes) else "application/json",
        **sender_headers("notify-dead-letter"), **headers})
    assert response.status_code == 200, response.text
    return response


def listed(gateway, event_id, **params) -> list[dict]:
    response = gateway.get("/admin/dead-letters", params={"limit": 100, **params}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return [entry for entry in response.json()["items"] if entry["event_id"] == event_id]


def replay(gateway, entry) -> httpx.Response:
    return gateway.post(f"/admin/dead-letters/{entry['id']}/replay", headers=ADMIN)


def test_a_dead_lettered_event_is_stored_once_and_its_personal_data_is_not_logged(gateway, shop, sink_url):
    email, phone, event_id = f"{unique('ivy')}@example.com", "+33611223344", str(uuid.uuid4())
    data = order_event_data(email=email, phone=phone) | {"shipping_address": {"street": "12 Rue Secrète"}}

    dead_letter(sink_url, data, event_id, **{"ce-subject": data["order_id"]})
    dead_letter(sink_url, data, event_id, **{"ce-subject": data["order_id"]})  # the sink received it twice

    [entry] = listed(gateway, event_id, type=ORDER_CREATED)
    assert (entry["source"], entry["type"], entry["subject"], entry["specversion"]) == (
        "/orders", ORDER_CREATED, data["order_id"], "1.0")
    assert entry["data"] == data
    assert entry["attributes"]["time"] == "2026-11-25T13:40:00Z"
    assert entry["attributes"]["knativeerrorcode"] == "503"
    assert (entry["dead_lettered"], entry["replays"], entry["replayed_at"]) == (2, 0, None)
    log = (shop.log_dir / "notify-dead-letter.log").read_text()
    assert event_id in log
    assert email not in log and phone not in log and "Secrète" not in log and "Secr\\u00e8te" not in log


def test_replaying_a_dead_letter_notifies_once_however_often_it_is_replayed(gateway, shop, sink_url):
    email, event_id = f"{unique('jo')}@example.com", str(uuid.uuid4())
    data = order_event_data(email=email)
    dead_letter(sink_url, data, event_id)  # never notified: the broker gave up while the sender was down
    [entry] = listed(gateway, event_id)

    first, second = replay(gateway, entry), replay(gateway, entry)

    assert first.status_code == 202, first.text
    assert (first.json()["id"], first.json()["replays"]) == (entry["id"], 1)
    assert first.json()["replayed_at"] is not None
    assert second.status_code == 202 and second.json()["replays"] == 2
    assert listed(gateway, event_id, replayed="true") and not listed(gateway, event_id, replayed="false")
    [notification] = ledger(gateway, order_id=data["order_id"])["items"]
    assert (notification["event_id"], notification["source"]) == (event_id, "/orders")
    assert (notification["status"], notification["attempts"]) == ("sent", 1)
    assert notifications_logged(shop, event_id) == 1


def test_replaying_an_event_already_notified_sends_nothing(gateway, shop, sink_url, notify_url):
    email, event_id = f"{unique('kim')}@example.com", str(uuid.uuid4())
    data = order_event_data(email=email)
    assert deliver(notify_url, data, event_id).status_code == 200
    dead_letter(sink_url, data, event_id)  # e.g. the acknowledgement was lost and the broker gave up
    [entry] = listed(gateway, event_id)

    assert replay(gateway, entry).status_code == 202

    assert ledger(gateway, order_id=data["order_id"])["items"][0]["attempts"] == 1
    assert notifications_logged(shop, event_id) == 1


def test_dead_letters_are_listed_newest_first_and_filtered_by_type(gateway, sink_url):
    # Not JSON, so never replayable (409): the session's fuzzing replays what it lists, and the test shop's sink
    # (notify itself, not a broker) would refuse JSON of an unknown type.
    event_type = f"com.example.test.{unique('kind')}"
    older, newer = str(uuid.uuid4()), str(uuid.uuid4())
    dead_letter(sink_url, b"\x00older", older, event_type)
    dead_letter(sink_url, b"\x00newer", newer, event_type)

    page = gateway.get("/admin/dead-letters", params={"type": event_type}, headers=ADMIN).json()
    second_page = gateway.get("/admin/dead-letters", params={"type": event_type, "limit": 1, "offset": 1},
                              headers=ADMIN).json()

    assert [item["event_id"] for item in page["items"]] == [newer, older]
    assert (page["total"], second_page["total"]) == (2, 2)
    assert [item["event_id"] for item in second_page["items"]] == [older]


def test_a_dead_letter_whose_data_is_not_json_is_kept_as_bytes(gateway, sink_url):
    event_id = str(uuid.uuid4())
    dead_letter(sink_url, b"\x00\xffnot json", event_id, "com.example.test.binary")

    [entry] = listed(gateway, event_id)

    assert (entry["data"], base64.b64decode(entry["data_base64"])) == (None, b"\x00\xffnot json")
    assert entry["attributes"]["datacontenttype"] == "application/octet-stream"
    assert_problem(replay(gateway, entry), 409)  # the publisher sends JSON only: kept, but not replayable


def test_a_replay_with_the_broker_down_answers_503_and_keeps_the_error(gateway, shop, sink_url):
    event_id = str(uuid.uuid4())
    dead_letter(sink_url, order_event_data(), event_id)
    [entry] = listed(gateway, event_id)
    settings = {**shop.settings, "K_SINK": f"http://127.0.0.1:{free_port()}"}

    with function_alone("notify-replay-dead-letter", settings) as replayer:
        response = httpx.post(f"{replayer.url}/admin/dead-letters/{entry['id']}/replay", headers=ADMIN, timeout=10)

    assert_problem(response, 503)
    [after] = listed(gateway, event_id)
    assert (after["replays"], after["replayed_at"]) == (0, None)
    assert after["last_replay_error"]


def test_the_dead_letter_api_is_for_admins_and_answers_404_for_unknown_ids(gateway):
    unknown = f"/admin/dead-letters/{uuid.uuid4()}/replay"

    assert_problem(gateway.get("/admin/dead-letters"), 401)
    assert_problem(gateway.get("/admin/dead-letters", headers=bearer("alice")), 403)
    assert_problem(gateway.post(unknown, headers=bearer("alice")), 403)
    assert_problem(gateway.post(unknown, headers=ADMIN), 404)
    assert_problem(gateway.post("/admin/dead-letters/not-an-id/replay", headers=ADMIN), 404)
    assert_problem(gateway.get("/admin/dead-letters", params={"status": "x"}, headers=ADMIN), 422)
    assert_problem(gateway.get("/admin/dead-letters", params={"replayed": "maybe"}, headers=ADMIN), 422)
