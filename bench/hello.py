"""The baseline: a functions-framework hello-world, in the same async mode as the shop's functions."""

import functions_framework.aio
from starlette.responses import PlainTextResponse


@functions_framework.aio.http
async def hello(request):
    return PlainTextResponse("hello")
