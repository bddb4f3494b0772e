"""The route table: the single source of truth for every endpoint function.

The local gateway routes by it, each function parses its path parameters with it, and the Knative manifests,
docker-compose file and OpenAPI document are generated from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Scaling:
    """Knative autoscaling: concurrency-based, scale to zero unless min_scale says otherwise."""

    container_concurrency: int = 50  # hard limit of in-flight requests per replica (queue-proxy queues past it)
    # The in-flight requests per replica the autoscaler really aims for: the manifests undo Knative's own discount.
    target: int = 35
    min_scale: int = 0
    max_scale: int = 10
    scale_down_delay: str | None = None  # e.g. "2m": replicas outlive a drop in demand by that long


@dataclass(frozen=True)
class RateLimit:
    """A token bucket for one public route, shared by every caller (as Envoy's local rate limit is, per gateway
    replica): `burst` requests at once, refilled at `per_second`. Past it: 429 with Retry-After."""

    per_second: float
    burst: int


READS = RateLimit(per_second=100, burst=200)  # generous: a page view is a few of these
WRITES = RateLimit(per_second=50, burst=100)
SEARCHES = RateLimit(per_second=20, burst=40)  # anonymous, and each one scans the catalog
PLACING_ORDERS = RateLimit(per_second=10, burst=20)  # anonymous-to-charge: each one holds stock and calls the card processor


# How a function that others call lives with having no replica. A cold start is Knative's pod start (0.8-4 s
# published) plus our process start (0.8-1.2 s, `make bench`); a caller waits PEER_TIMEOUT_SECONDS (2 s) at most.
KEPT_WARM = "kept-warm"  # min_scale >= 1: a caller needs its answer while a user waits for theirs
RETRIED = "retried"  # scales to zero: only the outbox calls it, and delivers again on the relay's next tick
COLD_STARTS = (KEPT_WARM, RETRIED)

# Callers that are not functions of the shop: the eventing broker's Trigger (deliveries and dead letters), the
# PingSources, and Prometheus' Alertmanager.
BROKER, PING_SOURCE, ALERTMANAGER = "broker", "ping-source", "alertmanager"
PLATFORM_CALLERS = (BROKER, PING_SOURCE, ALERTMANAGER)


@dataclass(frozen=True)
class Route:
    name: str  # also the Knative Service name
    method: str | None  # None for CloudEvent functions (no public route)
    path: str | None  # public path template, e.g. /products/{product_id}
    source: str  # entry file, relative to the project root
    target: str  # function name inside the entry file
    summary: str
    signature: str = "http"  # http | cloudevent
    visibility: str = "public"  # public (the gateway routes it) | cluster-local; each Knative Service is cluster-local
    auth: str = "none"  # none | optional | user | admin (documentation and OpenAPI)
    scaling: Scaling = field(default_factory=Scaling)
    # For the OpenAPI document: "module:Class" names, so this table imports no domain code.
    request: str | None = None
    response: str | None = None
    query: str | None = None
    status: int = 200  # the success status
    calls: tuple[str, ...] = ()  # the functions this one calls over HTTP (shared.peers): each gets its <NAME>_URL
    # Who may call this function besides the public gateway: route names (each the inverse of a `calls` edge) and
    # the platform senders below. An internal function answers no one else (shared.service_identity).
    callers: tuple[str, ...] = ()
    publishes: bool = False  # sends CloudEvents to K_SINK, which the SinkBinding injects
    cold_start: str | None = None  # for a function that others call: one of COLD_STARTS
    # Whose resource it is, for the owner check (another customer gets 404, as for nothing there): "path" when the
    # path's {user_id} names the owner, "record" when the stored record's user_id does. None: not owner-scoped.
    owner: str | None = None
    rate_limit: RateLimit | None = None  # public routes: READS for GET, WRITES otherwise, unless given

    def __post_init__(self):
        if self.rate_limit is None and self.path is not None and self.visibility == "public":
            object.__setattr__(self, "rate_limit", READS if self.method == "GET" else WRITES)

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        if self.path is None:
            return None
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        return re.compile(f"^{regex}$")

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when `path` fits this route's template, else None."""
        found = self.pattern.match(path) if self.pattern else None
        return found.groupdict() if found else None


CATALOG, CART = "functions.catalog.models", "functions.cart.models"
ORDERS, NOTIFY = "functions.orders.models", "functions.notify.models"


def _catalog(name, method, path, target, summary, **options) -> Route:
    return Route(f"catalog-{name}", method, path, f"functions/catalog/{target}.py", target, summary, **options)


def _cart(name, method, path, target, summary, **options) -> Route:
    return Route(f"cart-{name}", method, path, f"functions/cart/{target}.py", target, summary, **options)


def _orders(name, method, path, target, summary, **options) -> Route:
    return Route(f"orders-{name}", method, path, f"functions/orders/{target}.py", target, summary, **options)


def _notify(name, method, path, target, summary, **options) -> Route:
    return Route(f"notify-{name}", method, path, f"functions/notify/{target}.py", target, summary, **options)


ROUTES: tuple[Route, ...] = (
    _catalog("list-products", "GET", "/products", "list_products", "List products with filters, sorting and paging",
             auth="optional", query=f"{CATALOG}:ProductQuery", response=f"{CATALOG}:ProductPage", scaling=Scaling(container_concurrency=100, target=70, max_scale=20)),
    _catalog("create-product", "POST", "/products", "create_product", "Create a product", auth="admin",
             request=f"{CATALOG}:ProductCreate", response=f"{CATALOG}:ProductPublic", status=201,
             scaling=Scaling(max_scale=3)),
    _catalog("get-product", "GET", "/products/{product_id}", "get_product", "Get one product", auth="optional",
             response=f"{CATALOG}:ProductPublic",
             scaling=Scaling(container_concurrency=100, target=70, max_scale=20)),
    _catalog("update-product", "PATCH", "/products/{product_id}", "update_product", "Partially update a product",
             auth="admin", request=f"{CATALOG}:ProductUpdate", response=f"{CATALOG}:ProductPublic", scaling=Scaling(max_scale=3)),
    _catalog("search-products", "GET", "/search", "search_products", "Relevance-ordered product search",
             auth="optional", query=f"{CATALOG}:SearchQuery", response=f"{CATALOG}:ProductPage", rate_limit=SEARCHES,
             scaling=Scaling(container_concurrency=100, target=70, max_scale=20)),
    _catalog("lookup-products", "GET", "/internal/products/lookup", "lookup_products",
             "Batch lookup by SKU for the cart and orders", visibility="cluster-local",
             query=f"{CATALOG}:LookupQuery", response="shared.catalog_contract:LookupResult",
             callers=("cart-get-cart", "cart-add-item", "cart-set-item-quantity", "cart-remove-item"),
             scaling=Scaling(container_concurrency=100, target=70, min_scale=1, max_scale=20), cold_start=KEPT_WARM),
    _catalog("reserve-stock", "POST", "/internal/stock/reservations", "reserve_stock",
             "Reserve stock for an order, all lines or none", visibility="cluster-local",
             request="shared.catalog_contract:ReservationRequest", response="shared.catalog_contract:Reservation",
             status=201, callers=("orders-create-order",), scaling=Scaling(min_scale=1), cold_start=KEPT_WARM),
    _catalog("release-stock", "DELETE", "/internal/stock/reservations/{reservation_id}", "release_stock",
             "Release a stock reservation (idempotent)", visibility="cluster-local",
             response="shared.catalog_contract:Reservation",
             # Off the happy path (failed orders, the sweep); the delay keeps a replica that a timed-out first
             # attempt woke up until the relay's next tick (every minute) delivers again.
             callers=("orders-create-order", "orders-outbox-relay"), scaling=Scaling(scale_down_delay="2m"),
             cold_start=RETRIED),
    _catalog("confirm-stock", "POST", "/internal/stock/reservations/{reservation_id}/confirm", "confirm_stock",
             "Keep a reservation's stock for a paid order (idempotent)", visibility="cluster-local",
             response="shared.catalog_contract:Reservation", callers=("orders-create-order", "orders-outbox-relay"),
             scaling=Scaling(min_scale=1), cold_start=KEPT_WARM),
    _catalog("expire-reservations", None, None, "expire_reservations",
             "Release expired reservations and stray holds (PingSource)", signature="cloudevent",
             visibility="cluster-local", callers=(PING_SOURCE,),
             scaling=Scaling(container_concurrency=1, target=1, max_scale=1)),
    _cart("get-cart", "GET", "/cart/{user_id}", "get_cart", "The cart, priced from the catalog", auth="user",
          owner="path", query=f"{CART}:CartQuery", response=f"{CART}:CartPublic", calls=("catalog-lookup-products",),
          callers=("orders-create-order",), scaling=Scaling(min_scale=1), cold_start=KEPT_WARM),
    _cart("clear-cart", "DELETE", "/cart/{user_id}", "clear_cart", "Empty the cart", auth="user", status=204,
          owner="path"),
    _cart("add-item", "POST", "/cart/{user_id}/items", "add_item", "Add a product to the cart", auth="user",
          owner="path", request=f"{CART}:AddItem", response=f"{CART}:CartPublic", calls=("catalog-lookup-products",)),
    _cart("set-item-quantity", "PUT", "/cart/{user_id}/items/{sku}", "set_item_quantity",
          "Set the quantity of a cart line", auth="user", owner="path",
          request=f"{CART}:SetQuantity", response=f"{CART}:CartPublic", calls=("catalog-lookup-products",)),
    _cart("remove-item", "DELETE", "/cart/{user_id}/items/{sku}", "remove_item", "Remove a cart line", auth="user",
          owner="path", response=f"{CART}:CartPublic", calls=("catalog-lookup-products",)),
    _cart("remove-ordered", "POST", "/internal/cart/{user_id}/orders/{order_id}", "remove_ordered",
          "Take an order's quantities out of the cart, once per order", visibility="cluster-local",
          request=f"{CART}:OrderedLines", response=f"{CART}:CartLines",
          # Through the outbox, but every paid order tries it once before answering: kept warm like the rest.
          callers=("orders-create-order", "orders-outbox-relay"), scaling=Scaling(min_scale=1), cold_start=KEPT_WARM),
    # Orders hold a database connection per request in flight: a lower hard limit per replica.
    _orders("create-order", "POST", "/orders", "create_order", "Place an order (idempotent)", auth="user",
            request=f"{ORDERS}:CreateOrder", response=f"{ORDERS}:OrderPublic", status=201,
            scaling=Scaling(container_concurrency=20, target=14, max_scale=10), publishes=True, rate_limit=PLACING_ORDERS,
            calls=("cart-get-cart", "catalog-reserve-stock", "catalog-confirm-stock", "catalog-release-stock",
                   "cart-remove-ordered")),
    _orders("get-order", "GET", "/orders/details/{order_id}", "get_order", "One order with its lines", auth="user",
            owner="record", response=f"{ORDERS}:OrderPublic", scaling=Scaling(container_concurrency=20, target=14)),
    _orders("list-orders", "GET", "/orders/{user_id}", "list_orders", "A user's order history", auth="user",
            owner="path", query=f"{ORDERS}:HistoryQuery", response=f"{ORDERS}:OrderPage",
            scaling=Scaling(container_concurrency=20, target=14)),
    _orders("outbox-relay", None, None, "outbox_relay", "Deliver pending outbox rows (PingSource)",
            signature="cloudevent", visibility="cluster-local",
            callers=(PING_SOURCE,),
            scaling=Scaling(container_concurrency=1, target=1, max_scale=1), publishes=True,
            calls=("catalog-confirm-stock", "catalog-release-stock", "cart-remove-ordered")),
    _orders("list-outbox", "GET", "/admin/outbox", "list_outbox", "Outbox rows by state (dead ones to re-queue)",
            auth="admin", query=f"{ORDERS}:OutboxQuery", response=f"{ORDERS}:OutboxPage",
            scaling=Scaling(container_concurrency=20, target=14, max_scale=2)),
    _orders("requeue-outbox", "POST", "/admin/outbox/{outbox_id}/requeue", "requeue_outbox",
            "Deliver a dead outbox row again", auth="admin", response=f"{ORDERS}:OutboxEntry",
            scaling=Scaling(container_concurrency=20, target=14, max_scale=2)),
    _notify("order-created", None, None, "order_created", "Confirm an order (Trigger: order.created)",
            signature="cloudevent", visibility="cluster-local",
            callers=(BROKER,),
            scaling=Scaling(container_concurrency=20, target=14, max_scale=5)),
    _notify("dead-letter", None, None, "dead_letter", "Record events the broker gave up on (dead-letter sink)",
            signature="cloudevent", visibility="cluster-local",
            callers=(BROKER,),
            scaling=Scaling(container_concurrency=20, target=14, max_scale=2)),
    _notify("list-dead-letters", "GET", "/admin/dead-letters", "list_dead_letters",
            "Events the broker gave up on", auth="admin", query=f"{NOTIFY}:DeadLetterQuery",
            response=f"{NOTIFY}:DeadLetterPage", scaling=Scaling(container_concurrency=20, target=14, max_scale=2)),
    _notify("replay-dead-letter", "POST", "/admin/dead-letters/{dead_letter_id}/replay", "replay_dead_letter",
            "Deliver a dead-lettered event again", auth="admin", response=f"{NOTIFY}:DeadLetterEntry",
            status=202, scaling=Scaling(container_concurrency=20, target=14, max_scale=2), publishes=True),
    _notify("send-notification", "POST", "/notifications", "send_notification", "Send an email or sms",
            auth="admin", request=f"{NOTIFY}:NotificationRequest", response=f"{NOTIFY}:Accepted", status=202, scaling=Scaling(container_concurrency=20, target=14, max_scale=3)),
    _notify("list-notifications", "GET", "/notifications", "list_notifications", "Search the notification ledger",
            auth="admin", query=f"{NOTIFY}:NotificationQuery", response=f"{NOTIFY}:NotificationPage", scaling=Scaling(container_concurrency=20, target=14, max_scale=3)),
    _notify("alert-webhook", "POST", "/internal/alerts", "alert_webhook",
            "E-mail an Alertmanager notification group (webhook receiver)", visibility="cluster-local",
            auth="admin", query=f"{NOTIFY}:AlertRecipient", request=f"{NOTIFY}:AlertGroup",
            response=f"{NOTIFY}:Accepted", status=202,
            callers=(ALERTMANAGER,),
            scaling=Scaling(container_concurrency=20, target=14, max_scale=2)),
)

ROUTES_BY_NAME = {route.name: route for route in ROUTES}


def route(name: str) -> Route:
    return ROUTES_BY_NAME[name]


def public_routes() -> list[Route]:
    """The routes the public gateway serves (cluster-local and event functions are not among them)."""
    return [r for r in ROUTES if r.path is not None and r.visibility == "public"]
