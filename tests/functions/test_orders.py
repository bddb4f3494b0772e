"""Orders end to end over HTTP: real catalog, cart, PostgreSQL, outbox, CloudEvents and the notify function."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from local.processes import free_port
from shared.postgres import connect
from tests.support import ADMIN, answer_and_seconds, assert_problem, bearer, function_alone, unique

CARD = "4242424242424242"
INSUFFICIENT_FUNDS = "4000000000009995"
PROCESSOR_ERROR = "4000000000000119"
CARD_DECLINED = "4000000000000002"


@pytest.fixture
def user():
    return unique("buyer")


def product(gateway, stock=10, amount="25.00", **overrides):
    body = {"sku": unique("ORD"), "name": "Order Lamp", "price": {"amount": amount, "currency": "EUR"},
            "brand": "Lumina", "stock_quantity": stock, **overrides}
    response = gateway.post("/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def stock_of(gateway, item) -> int:
    return gateway.get(f"/products/{item['id']}", headers=ADMIN).json()["stock_quantity"]


def order_body(user, items=None, card=CARD, **overrides):
    body = {"user_id": user,
            "shipping_address": {"street": "1 Main St", "city": "Lyon", "postal_code": "69001", "country": "FR"},
            "payment": {"card_number": card, "expiry": "12/39", "cvv": "123"},
            "contact": {"email": f"{user}@example.com"}}
    if items is not None:
        body["items"] = [{"product_sku": item["sku"], "quantity": quantity} for item, quantity in items]
    return body | overrides


def place(client, user, body, key=None):
    return client.post("/orders", json=body, headers={**bearer(user), "Idempotency-Key": key or uuid.uuid4().hex})


def notifications(gateway, order_id):
    return gateway.get("/notifications", params={"order_id": order_id}, headers=ADMIN).json()


def test_an_order_takes_prices_from_the_catalog_and_is_confirmed_and_notified(gateway, user):
    lamp, bulb = product(gateway, stock=5, amount="25.00"), product(gateway, amount="3.10", name="Bulb")

    response = place(gateway, user, order_body(user, [(lamp, 2), (bulb, 3)]))

    assert response.status_code == 201, response.text
    order = response.json()
    assert response.headers["location"] == f"/orders/details/{order['id']}"
    assert order["status"] == "confirmed" and order["user_id"] == user
    assert order["total_price"] == "59.30" and order["currency"] == "EUR"
    assert order["card_last4"] == "4242"
    assert {(line["product_sku"], line["product_name"], line["quantity"], line["price_at_purchase"])
            for line in order["items"]} == {(lamp["sku"], "Order Lamp", 2, "25.00"), (bulb["sku"], "Bulb", 3, "3.10")}
    assert stock_of(gateway, lamp) == 3
    ledger = notifications(gateway, order["id"])
    assert ledger["total"] == 1
    assert (ledger["items"][0]["status"], ledger["items"][0]["channel"], ledger["items"][0]["recipient"]) == (
        "sent", "email", f"{user}@example.com")


def test_clients_cannot_set_prices(gateway, user):
    lamp = product(gateway)
    body = order_body(user)
    body["items"] = [{"product_sku": lamp["sku"], "quantity": 1, "price_at_purchase": "0.01"}]

    assert_problem(place(gateway, user, body), 422)


def test_ordering_the_cart_takes_out_exactly_the_ordered_quantities(gateway, user):
    lamp = product(gateway)
    gateway.post(f"/cart/{user}/items", json={"product_sku": lamp["sku"], "quantity": 2}, headers=bearer(user))

    response = place(gateway, user, order_body(user))

    assert response.status_code == 201, response.text
    assert [(line["product_sku"], line["quantity"]) for line in response.json()["items"]] == [(lamp["sku"], 2)]
    assert gateway.get(f"/cart/{user}", headers=bearer(user)).json()["items"] == []


def test_an_empty_cart_cannot_be_ordered(gateway, user):
    assert_problem(place(gateway, user, order_body(user)), 422)


def test_repeating_a_key_returns_the_first_result_and_creates_nothing(gateway, user, db):
    lamp = product(gateway, stock=10)
    body, key = order_body(user, [(lamp, 1)]), uuid.uuid4().hex

    first, second = place(gateway, user, body, key), place(gateway, user, body, key)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert stock_of(gateway, lamp) == 9
    assert db.run("SELECT count(*) FROM orders WHERE user_id = :u", u=user) == [[1]]


def test_five_concurrent_requests_with_one_key_make_one_order_one_charge_one_event(gateway, shop, user, db):
    lamp = product(gateway, stock=10)
    body, key = order_body(user, [(lamp, 1)]), uuid.uuid4().hex

    async def five():
        async with httpx.AsyncClient(base_url=shop.url, timeout=30) as client:
            return await asyncio.gather(*(place(client, user, body, key) for _ in range(5)))

    responses = asyncio.run(five())

    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    order_id = responses[0].json()["id"]
    assert db.run("SELECT count(*) FROM orders WHERE user_id = :u", u=user) == [[1]]
    assert db.run("SELECT count(*) FROM payments WHERE order_id = CAST(:o AS uuid)", o=order_id) == [[1]]
    assert db.run("SELECT count(*) FROM outbox WHERE subject = :o AND destination = 'sink'", o=order_id) == [[1]]
    assert stock_of(gateway, lamp) == 9


def test_a_key_reused_for_another_request_is_unprocessable(gateway, user):
    lamp = product(gateway)
    key = uuid.uuid4().hex
    assert place(gateway, user, order_body(user, [(lamp, 1)]), key).status_code == 201

    body = assert_problem(place(gateway, user, order_body(user, [(lamp, 2)]), key), 422)

    assert body["errors"][0]["field"] == "header.Idempotency-Key"


@pytest.mark.parametrize("key", [None, "", "k" * 65, "has space"])
def test_the_idempotency_key_is_required_and_bounded(gateway, user, key):
    headers = bearer(user) | ({"Idempotency-Key": key} if key is not None else {})

    assert_problem(gateway.post("/orders", json=order_body(user, []), headers=headers), 400)


@pytest.mark.parametrize("card, status, slug, final", [(INSUFFICIENT_FUNDS, 402, "payment-declined", "payment_failed"),
                                                       (CARD_DECLINED, 402, "payment-declined", "payment_failed"),
                                                       (PROCESSOR_ERROR, 409, "payment-not-completed", "cancelled")])
def test_failed_payments_release_the_stock(gateway, user, db, card, status, slug, final):
    lamp = product(gateway, stock=4)
    key = uuid.uuid4().hex

    response = place(gateway, user, order_body(user, [(lamp, 3)], card=card), key)

    body = assert_problem(response, status)
    assert body["type"].endswith("/" + slug) and "retry-after" not in response.headers  # final: use a new key
    assert db.run("SELECT status FROM orders WHERE id = CAST(:o AS uuid)", o=body["order_id"]) == [[final]]
    assert stock_of(gateway, lamp) == 4
    replay = place(gateway, user, order_body(user, [(lamp, 3)], card=card), key)
    assert replay.status_code == status and replay.json()["order_id"] == body["order_id"]
    assert stock_of(gateway, lamp) == 4


@pytest.mark.parametrize("change, field", [
    ({"payment": {"card_number": "4242424242424241", "expiry": "12/39", "cvv": "123"}}, "body.payment.card_number"),
    ({"payment": {"card_number": CARD, "expiry": "01/20", "cvv": "123"}}, "body.payment.expiry"),
    ({"payment": {"card_number": CARD, "expiry": "13/39", "cvv": "123"}}, "body.payment.expiry"),
    ({"payment": {"card_number": CARD, "expiry": "12/39", "cvv": "12a"}}, "body.payment.cvv"),
    ({"shipping_address": {"street": "", "city": "Lyon", "postal_code": "69001", "country": "FR"}},
     "body.shipping_address.street"),
    ({"shipping_address": {"street": "x", "city": "Lyon", "postal_code": "69001", "country": "France"}},
     "body.shipping_address.country"),
    ({"items": []}, "body.items"),
    ({"items": [{"product_sku": "A", "quantity": 0}]}, "body.items.0.quantity"),
    ({"contact": {"email": "not-an-email"}}, "body.contact.email"),
])
def test_invalid_orders_are_rejected_with_field_errors(gateway, user, change, field):
    body = assert_problem(place(gateway, user, order_body(user) | change), 422)

    assert field in [error["field"] for error in body["errors"]]
    assert CARD not in str(body)


def test_unknown_products_and_missing_stock_are_refused(gateway, user):
    lamp = product(gateway, stock=1)

    assert_problem(place(gateway, user, order_body(user, [({"sku": "NO-SUCH"}, 1)])), 404)
    assert_problem(place(gateway, user, order_body(user, [(lamp, 2)])), 409)
    assert stock_of(gateway, lamp) == 1


def test_an_order_whose_total_the_ledger_cannot_hold_is_422_and_gives_its_stock_back(gateway, user, db):
    dearest, cheap = product(gateway, stock=100, amount="9999999999.99"), product(gateway, stock=5, amount="1.00")
    key = uuid.uuid4().hex

    response = place(gateway, user, order_body(user, [(dearest, 100), (cheap, 1)]), key)

    body = assert_problem(response, 422)
    assert "at most 999999999999.99" in body["detail"]
    assert db.run("SELECT o.status, o.failure_reason FROM orders o JOIN idempotency_keys k ON k.order_id = o.id "
                  "WHERE k.user_id = :u AND k.idempotency_key = :k", u=user, k=key) == [["cancelled", "total_too_large"]]
    assert (stock_of(gateway, dearest), stock_of(gateway, cheap)) == (100, 5)
    assert place(gateway, user, order_body(user, [(dearest, 100), (cheap, 1)]), key).status_code == 422


def test_thirty_concurrent_orders_for_ten_in_stock_sell_exactly_ten(gateway, shop, db):
    lamp = product(gateway, stock=10)
    buyers = [unique("rush") for _ in range(30)]

    async def settled(client, buyer):
        # A 503 says "busy, retry shortly" (an instance's connections all taken: a slow machine got them under 30
        # concurrent orders); a client retries it with the same key, as it would in production.
        body, key = order_body(buyer, [(lamp, 1)]), uuid.uuid4().hex
        for _ in range(50):
            response = await place(client, buyer, body, key)
            if response.status_code != 503:
                return response
            await asyncio.sleep(0.2)
        return response

    async def rush():
        async with httpx.AsyncClient(base_url=shop.url, timeout=60) as client:
            return await asyncio.gather(*(settled(client, buyer) for buyer in buyers))

    statuses = sorted(response.status_code for response in asyncio.run(rush()))

    assert statuses == [201] * 10 + [409] * 20
    assert stock_of(gateway, lamp) == 0
    assert db.run("SELECT count(*) FROM order_lines WHERE product_sku = :s", s=lamp["sku"]) == [[10]]
    assert db.run("SELECT count(*) FROM orders WHERE status = 'pending' AND user_id LIKE 'rush-%'") == [[0]]


def test_customers_order_and_read_only_for_themselves(gateway, user):
    lamp = product(gateway)
    order = place(gateway, user, order_body(user, [(lamp, 1)])).json()

    assert_problem(place(gateway, "intruder", order_body(user, [(lamp, 1)])), 403)
    assert_problem(gateway.get(f"/orders/{user}", headers=bearer("intruder")), 404)
    assert_problem(gateway.get(f"/orders/details/{order['id']}", headers=bearer("intruder")), 404)
    assert_problem(gateway.get(f"/orders/{user}"), 401)
    assert gateway.get(f"/orders/details/{order['id']}", headers=ADMIN).json()["id"] == order["id"]
    assert gateway.get(f"/orders/{user}", headers=ADMIN).json()["total"] == 1


def test_history_is_newest_first_and_paged(gateway, user):
    lamp = product(gateway)
    ids = [place(gateway, user, order_body(user, [(lamp, 1)])).json()["id"] for _ in range(3)]

    first = gateway.get(f"/orders/{user}", params={"limit": 2}, headers=bearer(user)).json()
    rest = gateway.get(f"/orders/{user}", params={"limit": 2, "offset": 2}, headers=bearer(user)).json()

    assert [o["id"] for o in first["items"] + rest["items"]] == ids[::-1]
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert_problem(gateway.get(f"/orders/{user}", params={"limit": 0}, headers=bearer(user)), 422)
    assert_problem(gateway.get(f"/orders/{user}", params={"status": "lost"}, headers=bearer(user)), 422)


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown-uuid", "not-a-uuid"])
def test_unknown_orders_are_not_found(gateway, user, order_id):
    assert_problem(gateway.get(f"/orders/details/{order_id}", headers=bearer(user)), 404)


def test_card_numbers_are_kept_only_as_last_four_digits(gateway, shop, user, db):
    lamp = product(gateway)
    place(gateway, user, order_body(user, [(lamp, 1)]))
    place(gateway, user, order_body(user, [(lamp, 1)], card=INSUFFICIENT_FUNDS))

    for table in ("orders", "payments", "idempotency_keys", "outbox"):
        assert db.run(f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%424242424242%' "
                      "OR t::text LIKE '%400000000000%'") == [[0]], table
    logs = "".join(path.read_text() for path in shop.log_dir.glob("orders-*.log"))
    assert "4242424242424242" not in logs and INSUFFICIENT_FUNDS not in logs


def test_the_schema_refuses_illegal_status_transitions(gateway, user, db):
    lamp = product(gateway)
    order = place(gateway, user, order_body(user, [(lamp, 1)])).json()

    with pytest.raises(Exception, match="illegal order status transition"):
        db.run("UPDATE orders SET status = 'pending' WHERE id = CAST(:o AS uuid)", o=order["id"])
    with pytest.raises(Exception, match="orders_status_check"):
        db.run("INSERT INTO orders (id, user_id, status, currency, total_amount, shipping_address, card_last4) "
               "VALUES (:id, 'u', 'shipped', 'EUR', 1, '{}', '1234')", id=uuid.uuid4())


def test_orders_survive_a_sink_outage_and_the_relay_delivers_later(gateway, shop, user, db):
    lamp = product(gateway, stock=10)
    with function_alone("orders-create-order", {**shop.settings, "K_SINK": f"http://127.0.0.1:{free_port()}"}) as no_sink:
        responses = [httpx.post(f"{no_sink.url}/orders", json=order_body(user, [(lamp, 1)]), timeout=10,
                                headers={**bearer(user), "Idempotency-Key": uuid.uuid4().hex}) for _ in range(3)]
    assert [r.status_code for r in responses] == [201] * 3
    assert {r.json()["status"] for r in responses} == {"paid"}
    order_ids = [r.json()["id"] for r in responses]
    assert all(notifications(gateway, order_id)["total"] == 0 for order_id in order_ids)

    db.run("UPDATE outbox SET next_attempt_at = now() WHERE subject = ANY(CAST(:ids AS text[]))", ids=order_ids)
    assert shop.tick_relay() == 200

    for order_id in order_ids:
        assert gateway.get(f"/orders/details/{order_id}", headers=ADMIN).json()["status"] == "confirmed"
        assert notifications(gateway, order_id)["items"][0]["status"] == "sent"
    assert db.run("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND subject = ANY(CAST(:ids AS text[]))",
                  ids=order_ids) == [[0]]


def test_database_down_answers_503(shop_settings, user):
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    with function_alone("orders-list-orders", {**shop_settings, "DATABASE_URL": unreachable}) as orders:
        response, seconds = answer_and_seconds(lambda: httpx.get(f"{orders.url}/orders/{user}", headers=bearer(user),
                                                                 timeout=5))

    assert_problem(response, 503)
    assert response.headers["retry-after"] and seconds < 2.5


def test_an_outbox_row_that_keeps_failing_goes_dead_is_listed_and_can_be_requeued(gateway, shop, user, db):
    lamp = product(gateway, stock=5)
    order = place(gateway, user, order_body(user, [(lamp, 1)])).json()
    row_id = uuid.uuid4()  # a cart removal its destination refuses every time (no such user id)
    db.run("INSERT INTO outbox (id, destination, event_type, source, subject, data, attempts) VALUES "
           "(:id, 'cart', 'cart-remove-ordered', '/orders', :subject, CAST(:data AS jsonb), 11)", id=row_id,
           subject=order["id"], data='{"user_id": "not a user!", "lines": [{"product_sku": "X", "quantity": 1}]}')

    assert shop.tick_relay() == 200

    dead = gateway.get("/admin/outbox", params={"state": "dead"}, headers=ADMIN).json()
    entry = next(item for item in dead["items"] if item["id"] == str(row_id))
    assert entry["attempts"] == 12 and entry["dead_at"] and entry["last_error"]
    assert metric_value(shop, "orders-outbox-relay", "shop_outbox_dead") >= 1
    assert assert_problem(gateway.get("/admin/outbox", headers=bearer(user)), 403)

    requeued = gateway.post(f"/admin/outbox/{row_id}/requeue", headers=ADMIN)
    assert requeued.status_code == 200 and requeued.json()["dead_at"] is None and requeued.json()["attempts"] == 0
    assert_problem(gateway.post(f"/admin/outbox/{row_id}/requeue", headers=ADMIN), 404)  # no longer dead
    assert_problem(gateway.post("/admin/outbox/nope/requeue", headers=ADMIN), 404)
    db.run("DELETE FROM outbox WHERE id = :id", id=row_id)


def test_an_order_with_items_leaves_the_cart_alone(gateway, user):
    lamp, bulb = product(gateway), product(gateway)
    gateway.post(f"/cart/{user}/items", json={"product_sku": bulb["sku"], "quantity": 2}, headers=bearer(user))

    assert place(gateway, user, order_body(user, [(lamp, 1)])).status_code == 201

    assert [(line["product_sku"], line["quantity"]) for line in
            gateway.get(f"/cart/{user}", headers=bearer(user)).json()["items"]] == [(bulb["sku"], 2)]


def test_the_pool_bounds_open_connections_and_a_full_pool_is_503(postgres_url):
    from shared.errors import ServiceUnavailable
    from shared.postgres import Pool

    pool = Pool(postgres_url, timeout=2, size=1, acquire_timeout=0.2)
    with pool.connection() as held:
        held.run("SELECT 1")
        with pytest.raises(ServiceUnavailable):
            with pool.connection():
                pass
    with pool.connection() as again:  # given back: usable again
        assert again.run("SELECT 1") == [[1]]


def test_a_database_with_too_many_clients_answers_503_with_retry_after(shop_settings, postgres_url, user, db):
    role = f"limited_{uuid.uuid4().hex[:8]}"
    db.run(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    try:
        limited = postgres_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        occupied = connect(limited, timeout=5)  # the role's only connection is taken
        try:
            with function_alone("orders-list-orders", {**shop_settings, "DATABASE_URL": limited}) as orders:
                response = httpx.get(f"{orders.url}/orders/{user}", headers=bearer(user), timeout=5)
        finally:
            occupied.close()
        assert assert_problem(response, 503) and response.headers["retry-after"]
    finally:
        db.run(f"DROP ROLE {role}")


def metric_value(shop, name: str, metric: str) -> float:
    port = shop.function_ports[name][1]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(metric + " ")
               or line.startswith(metric + "{"))


@pytest.mark.parametrize("max_connections", [1, 3])
def test_a_function_opens_at_most_database_max_connections_and_waits_its_acquire_timeout(
        shop_settings, postgres_url, user, db, max_connections):
    """Six reads while `orders` is locked: DATABASE_MAX_CONNECTIONS of them hold a connection (each waits on the
    lock until DATABASE_TIMEOUT_SECONDS), the rest wait DATABASE_ACQUIRE_TIMEOUT_SECONDS for one, then 503."""
    from concurrent.futures import ThreadPoolExecutor

    role = f"pooled_{uuid.uuid4().hex[:8]}"  # its connections are this function's alone
    db.run(f"CREATE ROLE {role} LOGIN")
    db.run(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    own_url = postgres_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    settings = {**shop_settings, "DATABASE_URL": own_url,
                "DATABASE_MAX_CONNECTIONS": str(max_connections), "DATABASE_ACQUIRE_TIMEOUT_SECONDS": "1",
                "DATABASE_TIMEOUT_SECONDS": "2"}
    count = f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"
    try:
        with function_alone("orders-list-orders", settings) as orders:
            url = f"{orders.url}/orders/{user}"
            assert httpx.get(url, headers=bearer(user), timeout=10).status_code == 200
            locker = connect(postgres_url, timeout=10)
            locker.run("BEGIN")
            locker.run("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            try:
                with ThreadPoolExecutor(6) as burst:
                    answers = [burst.submit(httpx.get, url, headers=bearer(user), timeout=15) for _ in range(6)]
                    most, until = 0, time.monotonic() + 1.8  # before a holder's DATABASE_TIMEOUT_SECONDS
                    while time.monotonic() < until:  # (its backend, still waiting on the lock, would linger)
                        most = max(most, db.run(count)[0][0])
                        time.sleep(0.05)
            finally:
                locker.run("ROLLBACK")
                locker.close()
        details = [assert_problem(answer.result(), 503)["detail"] for answer in answers]

        assert most == max_connections
        assert sum("connections of this instance are busy" in detail for detail in details) == 6 - max_connections
    finally:
        db.run(f"DROP OWNED BY {role}")
        db.run(f"DROP ROLE {role}")
