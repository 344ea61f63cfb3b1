"""The engine's ``log_level`` (silent, info, debug) on the standard ``faye.redis`` logger."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("faye.redis")


class EngineLog:
    """The engine's ``log_level`` applied per engine, on the ``faye.redis`` logger."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        if threshold <= logging.CRITICAL and logger.level == logging.NOTSET:
            logger.setLevel(threshold)

    def enabled(self, level: int) -> bool:
        return level >= self.threshold

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        if level >= self.threshold:
            logger.log(level, msg, *args, exc_info=exc_info)

    def debug(self, msg: str, *args: Any) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: Any, exc_info: Any = None) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info)
