"""What every floor does besides its one read: garbage collection held while the floor imports (as
shared.startup holds it for ours), one metric, one pydantic model, one JSON answer. Imported first by each floor."""

import gc

gc.disable()

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

ANSWERED = Counter("floor_requests", "requests answered")


class Found(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on the first request, as ours (shared.model)

    found: bool


def answer(found: bool) -> Response:
    ANSWERED.inc()
    return Response(Found(found=found).model_dump_json(), media_type="application/json")


def imported() -> None:
    """The floor is imported: freeze what exists, collect again (shared.startup.imported)."""
    gc.freeze()
    gc.enable()
