from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from shop.tasks import ship


class Command(BaseCommand):
    help = "Ship orders and announce it (publishes through Redis, no server needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("order_ids", nargs="+", type=int)

    def handle(self, *args: Any, order_ids: list[int], **options: Any) -> None:
        for order_id in order_ids:
            ship(order_id)
            self.stdout.write(f"order {order_id} shipped")
