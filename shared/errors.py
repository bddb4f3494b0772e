"""Domain errors and their RFC 9457 problem+json form.

Services raise these; the shared `endpoint` decorator turns them into responses once.
"""

from __future__ import annotations

PROBLEM_BASE = "https://shop.example.com/problems/"

_unavailable_errors: tuple[type[BaseException], ...] = ()


class Problem(Exception):
    """An error the caller can act on, answered as application/problem+json."""

    status = 500
    slug = "internal"
    title = "Internal Server Error"

    def __init__(self, detail: str, *, errors: list[dict] | None = None, headers: dict | None = None,
                 extensions: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extensions = extensions or {}  # RFC 9457 extension members, e.g. the order a refusal concerns

    def body(self) -> dict:
        body = {"type": PROBLEM_BASE + self.slug, "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return body | self.extensions


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad Request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="shop"'})


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not Found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method Not Allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class Unprocessable(Problem):
    status, slug, title = 422, "validation-error", "Unprocessable Content"


class IdempotencyKeyReused(Unprocessable):
    """An Idempotency-Key sent again with another request than the one it names."""

    def __init__(self, named: str):
        super().__init__(f"This Idempotency-Key was used for {named}", errors=[
            {"field": "header.Idempotency-Key", "type": "idempotency_key_reused",
             "message": "Send a new key for a new request"}])


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class PaymentRequired(Problem):
    status, slug, title = 402, "payment-declined", "Payment Required"


class BadGateway(Problem):
    status, slug, title = 502, "bad-gateway", "Bad Gateway"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class RecordedProblem(Problem):
    """A problem answered before (stored, or passed on by another function), answered again as it was."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        extensions = {key: value for key, value in body.items()
                      if key not in ("type", "title", "status", "detail", "errors", "request_id")}
        super().__init__(body.get("detail") or f"Refused ({status})", errors=body.get("errors"), headers=headers,
                         extensions=extensions)
        self.status = status
        self.slug = str(body.get("type", "")).rsplit("/", 1)[-1] or "refused"
        self.title = body.get("title") or "Refused"


def register_unavailable(*exception_types: type[BaseException]) -> None:
    """Declare driver exceptions that mean "a store or peer cannot be reached" (answered 503).

    Store modules call this when imported, so the HTTP layer never imports a driver itself.
    """
    global _unavailable_errors
    _unavailable_errors = tuple(dict.fromkeys(_unavailable_errors + exception_types))


def as_problem(exc: BaseException) -> Problem | None:
    """The problem an exception stands for, or None when it is a bug (answered 500)."""
    if isinstance(exc, Problem):
        return exc
    if _unavailable_errors and isinstance(exc, _unavailable_errors):
        return ServiceUnavailable(f"A backing service is unavailable: {type(exc).__name__}")
    return None


def validation_errors(pydantic_errors: list[dict], location: str) -> list[dict]:
    """Pydantic's errors as problem+json field errors: `{"field", "message", "type"}` with dotted paths."""
    return [
        {
            "field": ".".join(str(part) for part in (location, *error["loc"]) if part != ""),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in pydantic_errors
    ]


class PreconditionFailed(Problem):
    """412: an `If-Match` names no current version of the resource (RFC 9110 §15.5.13)."""

    status, slug, title = 412, "precondition-failed", "Precondition Failed"


class PreconditionRequired(Problem):
    """428: the change is only accepted as a conditional request (RFC 6585 §3)."""

    status, slug, title = 428, "precondition-required", "Precondition Required"
