import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from faye.redis import PublishError
from shop.realtime import publisher


@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    """Take an order and announce it on /orders/new to every subscriber of the fleet."""
    try:
        order = json.loads(request.body)
    except ValueError:
        order = None
    if not isinstance(order, dict) or not order.get("item"):
        return JsonResponse({"error": 'send a JSON object with an "item"'}, status=400)
    try:
        publisher.publish("/orders/new", order)
    except PublishError as exc:
        return JsonResponse({"error": f"could not announce the order: {exc}"}, status=503)
    return JsonResponse(order, status=201)
