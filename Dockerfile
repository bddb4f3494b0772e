# One image for every function: the Knative Service (or compose service) picks the function with
# FUNCTION_SOURCE / FUNCTION_TARGET / FUNCTION_SIGNATURE_TYPE. Runtime dependencies only: the dev and
# test tools (SecantusDB, pytest, moto) are never installed here.
# Pinned by tag only: no registry was reachable to resolve the digest. Pin it where one is
# (`docker buildx imagetools inspect python:3.11-slim`) as FROM python:3.11-slim@sha256:<digest>, and renew it
# for Debian's security updates.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY functions ./functions
COPY local ./local
COPY openapi.json ./
# Compiled here: uid 10001 cannot write /app/__pycache__, so each cold start would otherwise compile every
# module it imports from /app (16-24 ms of CPU per function, measured).
RUN pip install . \
 && python -m compileall -q /app \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin shop

USER 10001
# FUNCTION_USE_ASGI: every function is async (functions_framework.aio); without it functions-framework builds a Flask
# app it never uses before handing over to Starlette (its PR #387). Flask is imported either way (see README).
ENV FUNCTION_USE_ASGI=true \
    PYTHONPATH=/app \
    PORT=8080 \
    METRICS_PORT=9464 \
    WORKERS=1 \
    THREADS=8 \
    OPENAPI_PATH=/app/openapi.json
EXPOSE 8080 9464
CMD ["functions-framework"]
