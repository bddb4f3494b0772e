"""CloudEvent types the shop produces and consumes (kept apart from the publisher, so consumers import no HTTP client)."""

ORDER_CREATED = "com.example.shop.order.created"
