"""A minimal Django project: no database, one app, Faye in front (see asgi.py)."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["shop"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "shop.urls"
USE_TZ = True

# The Redis fleet, shared by the Bayeux endpoint (asgi.py) and the publisher (realtime.py):
# the same engine options, so the same Redis and namespace.
FAYE_ENGINE = {
    "type": "redis",
    "url": os.environ.get("FAYE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "namespace": "shop",
}
FAYE_TIMEOUT = 25  # seconds a /meta/connect is held
