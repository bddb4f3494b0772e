"""The base of every request, response and contract model: its validator and serializer are built on first use.

A function imports ~30 models (its package's, the money and catalog contract types) and uses a few; building
them all at import cost 5-11 ms of a cold start's CPU on the 2-core machine (`make startup`), paid before the
first request by a function that never touches most of them. Settings do the same (shared.settings.Settings).
"""

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
