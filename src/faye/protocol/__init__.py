"""The Bayeux protocol core: pure functions, no I/O."""

from faye.protocol import channels, errors, meta

__all__ = ["channels", "errors", "meta"]
