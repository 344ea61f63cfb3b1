"""Optional dependencies: a missing one is reported with the extra that installs it."""

from __future__ import annotations

import importlib

DISTRIBUTION = "faye-redis-ng"


class MissingExtra(ImportError):
    """A feature's optional dependency is not installed."""


def require(feature: str, extra: str, *modules: str) -> None:
    """Import ``modules`` or fail naming ``pip install 'faye-redis-ng[extra]'``.

    Memory-only servers install without the Redis libraries, so the first use of the Redis
    engine (or of the HTTP client) is where a missing one must be explained.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(
                f"{feature} needs the Python package {module!r}, which is not installed: "
                f"pip install '{DISTRIBUTION}[{extra}]'"
            ) from exc
