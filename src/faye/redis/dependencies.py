"""Imported first by ``faye.redis``: without the ``[redis]`` extra, say which one to install."""

from __future__ import annotations

from faye.extras import require

require("The Redis engine", "redis", "redis", "hiredis")
