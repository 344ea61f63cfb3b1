"""A worker that publishes without running a server: a queue consumer, a scheduled job.

``python worker.py 7 8`` announces that orders 7 and 8 shipped, on ``/orders/<id>``,
in one Redis round trip, with the asyncio Publisher.
"""

from __future__ import annotations

import asyncio
import sys

import settings

from faye.redis import Publisher


async def announce_shipped(order_ids: list[int]) -> None:
    async with Publisher(
        settings.REDIS_URL, namespace=settings.NAMESPACE, timeout=settings.TIMEOUT
    ) as publisher:
        await publisher.publish_many(
            (f"/orders/{order_id}", {"id": order_id, "status": "shipped"}) for order_id in order_ids
        )


if __name__ == "__main__":
    asyncio.run(announce_shipped([int(arg) for arg in sys.argv[1:]]))
