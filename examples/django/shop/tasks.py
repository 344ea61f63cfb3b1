"""Work done outside any request: call these from a Celery task, an RQ job or cron."""

from shop.realtime import publisher


def ship(order_id: int) -> None:
    """Mark an order shipped and tell whoever watches /orders/<id>."""
    publisher.publish(f"/orders/{order_id}", {"id": order_id, "status": "shipped"})
