"""The server's floor: a bare Starlette hello-world, run by uvicorn with uvloop and httptools (no functions-framework)."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/", hello)])
