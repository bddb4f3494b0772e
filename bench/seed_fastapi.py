"""Benchmark-only: the seed design's stack (FastAPI + uvicorn) serving GET /products/{id} on the same MongoDB.

    MONGODB_URL=... MONGODB_DATABASE=... uvicorn bench.seed_fastapi:app --port 8200
"""

import os

from bson import ObjectId
from fastapi import FastAPI, HTTPException
from pymongo import AsyncMongoClient

app = FastAPI()
_client: AsyncMongoClient | None = None


def products():
    global _client
    if _client is None:
        _client = AsyncMongoClient(os.environ["MONGODB_URL"], serverSelectionTimeoutMS=1500, tz_aware=True)
    return _client[os.environ.get("MONGODB_DATABASE", "shop")]["products"]


@app.get("/products/{product_id}")
async def get_product(product_id: str):
    if not ObjectId.is_valid(product_id):
        raise HTTPException(404, "not found")
    document = await products().find_one({"_id": ObjectId(product_id), "is_active": True})
    if document is None:
        raise HTTPException(404, "not found")
    document["id"] = str(document.pop("_id"))
    document.pop("brand_key", None)
    document["price"] = {"amount": str(document["price"]["amount"].to_decimal()), "currency": document["price"]["currency"]}
    return document
