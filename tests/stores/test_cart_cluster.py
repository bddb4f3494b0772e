"""The whole cart suite again, on a real 3-primary Redis Cluster (REDIS_CLUSTER=1), plus what only a cluster shows:
each user's keys on the primary that owns their slot, and a fast 503 when the cluster cannot serve them."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import redis as redis_sync
from redis.cluster import RedisCluster as SyncRedisCluster

from local.processes import stop
from shared.routes import ROUTES
from tests.functions.test_cart import *  # noqa: F403 - every cart test, collected again against the cluster
from tests.functions.test_cart import add, cart_key, new_product, remove_ordered
from tests.stores.servers import redis_cluster, wait_for_cluster_state
from tests.support import RUN_ID, assert_problem, bearer, function_alone, running_shop, service_headers, unique

# The cart functions and the catalog functions the cart tests call, directly or through the gateway.
CART_SHOP = tuple(route for route in ROUTES if route.name.startswith("cart-") or route.name in {
    "catalog-create-product", "catalog-update-product", "catalog-lookup-products"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def shop_settings(shop_settings, cluster):
    return {**shop_settings, "REDIS_URL": cluster.url, "REDIS_CLUSTER": "1",
            "REDIS_KEY_PREFIX": f"test:{RUN_ID}:cluster:"}


@pytest.fixture(scope="module")
def shop(shop_settings, tmp_path_factory):
    with running_shop(shop_settings, tmp_path_factory.mktemp("cluster-logs"), routes=CART_SHOP) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(shop):
    with httpx.Client(base_url=shop.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def redis_client(cluster):
    client = SyncRedisCluster.from_url(cluster.url, decode_responses=True)
    yield client
    client.close()


def users_on_each_primary(client: SyncRedisCluster, settings: dict) -> dict[int, str]:
    """One new user id per primary (by port), whose cart key hashes to a slot that primary serves."""
    found: dict[int, str] = {}
    while len(found) < len(client.get_primaries()):
        user = unique("spread")
        found.setdefault(client.get_node_from_key(cart_key(settings, user)).port, user)
    return found


def test_every_primary_serves_the_carts_of_its_slots(gateway, shop, shop_settings, redis_client, cluster):
    users = users_on_each_primary(redis_client, shop_settings)
    mug = new_product(gateway)["sku"]

    for port, user in users.items():
        assert add(gateway, user, mug, 3).status_code == 200
        removed = remove_ordered(shop, user, uuid.uuid4(), {mug: 1})
        assert removed.status_code == 200 and removed.json()["items"] == [{"product_sku": mug, "quantity": 2}]

    assert sorted(users) == sorted(cluster.ports)
    for port, user in users.items():  # each cart is on its own primary, and only there
        node = redis_sync.Redis(port=port, decode_responses=True)
        assert node.hget(cart_key(shop_settings, user), mug) == "2"
        assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", redis_client.keyslot(cart_key(shop_settings, user)))
        node.close()


def test_the_index_is_written_once_per_refresh_and_left_when_the_cart_is_cleared(gateway, shop_settings,
                                                                                 redis_client, user):
    mug = new_product(gateway)["sku"]
    index = active_index(shop_settings, user)  # noqa: F405 - from the cart suite

    add(gateway, user, mug)
    first = redis_client.zscore(index, user)
    add(gateway, user, mug)
    assert redis_client.zscore(index, user) == first  # not rewritten within the refresh period
    assert gateway.delete(f"/cart/{user}", headers=bearer(user)).status_code == 204

    assert first is not None
    assert redis_client.zscore(index, user) is None
    assert not redis_client.exists(cart_key(shop_settings, user))


def test_a_primary_down_answers_503_fast_for_its_users_then_for_all_once_the_cluster_fails(shop_settings,
                                                                                          tmp_path):
    with redis_cluster(tmp_path) as failing:
        client = SyncRedisCluster.from_url(failing.url, decode_responses=True)
        settings = {**shop_settings, "REDIS_URL": failing.url}
        users = users_on_each_primary(client, settings)
        client.close()
        down, *up = failing.ports
        with function_alone("cart-remove-ordered", settings) as remover:
            def removal(user):
                started = time.monotonic()
                response = httpx.post(f"{remover.url}/internal/cart/{users[user]}/orders/{uuid.uuid4()}",
                                      json={"lines": [{"product_sku": "X", "quantity": 1}]}, timeout=10,
                                      headers=service_headers("cart-remove-ordered"))
                return response, time.monotonic() - started

            assert all(removal(port)[0].status_code == 200 for port in failing.ports)
            stop([failing.processes[failing.ports.index(down)]])
            on_the_stopped_primary, elapsed = removal(down)
            wait_for_cluster_state(up, "fail")
            on_a_live_primary, elapsed_live = removal(up[0])

    for response, took in ((on_the_stopped_primary, elapsed), (on_a_live_primary, elapsed_live)):
        assert_problem(response, 503)
        assert response.headers["Retry-After"]
        assert took < 3  # a bound on hanging (REDIS_TIMEOUT_SECONDS is 1), not a speed measurement

