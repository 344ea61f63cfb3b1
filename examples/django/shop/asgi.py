"""The ASGI entry point: Faye's endpoint at /faye, Django for everything else.

Run with ``uvicorn shop.asgi:application``.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application

import faye

django_application = get_asgi_application()  # sets Django up before anything uses it

application = faye.ASGIAdapter(
    mount="/faye",
    timeout=settings.FAYE_TIMEOUT,
    engine=settings.FAYE_ENGINE,
    app=django_application,
)
