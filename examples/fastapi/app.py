"""A FastAPI app wrapped by Faye: /faye is the Bayeux endpoint, everything else is FastAPI.

``POST /orders`` publishes the new order to ``/orders/new`` through the adapter's
in-process client. Run it with ``uvicorn app:app`` (see README.md).
"""

from __future__ import annotations

import settings
from fastapi import FastAPI
from pydantic import BaseModel, Field

import faye

api = FastAPI(title="shop")
app = faye.ASGIAdapter(
    mount="/faye",
    timeout=settings.TIMEOUT,
    engine={"type": "redis", "url": settings.REDIS_URL, "namespace": settings.NAMESPACE},
    app=api,
)


class Order(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(default=1, gt=0)


@api.post("/orders", status_code=201)
async def create_order(order: Order) -> Order:
    await app.get_client().publish("/orders/new", order.model_dump())
    return order
