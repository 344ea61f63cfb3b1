"""What the web app and the worker must agree on: the Redis fleet they share."""

import os

REDIS_URL = os.environ.get("FAYE_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = "shop"
TIMEOUT = 25  # the servers' Bayeux timeout (seconds)
