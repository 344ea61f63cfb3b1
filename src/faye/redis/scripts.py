"""The engine's Lua scripts, read from the ``lua/`` files and run by EVALSHA.

Each script is ``lib.lua`` followed by its own file. Scripts are loaded with SCRIPT
LOAD when the engine starts and again whenever Redis answers NOSCRIPT (after a
restart or SCRIPT FLUSH): a NOSCRIPT reply means the script did not run, so running
it again after loading cannot duplicate anything.

On a Redis Cluster the scripts notify with SPUBLISH instead of PUBLISH (sharded
pub/sub): the same sources with ``lib.lua``'s ``NOTIFY`` constant switched, and a
first line declaring ``allow-cross-slot-keys`` (Redis 7.0+, which sharded pub/sub needs
anyway): one ``deliveries`` call serves all the partitions a master holds, whose keys
sit in different slots of that master.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

NAMES = ("publish", "deliveries", "subscribe", "unsubscribe", "destroy", "recover", "unlock")


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str


def _read(name: str) -> str:
    return resources.files("faye.redis").joinpath("lua", f"{name}.lua").read_text("utf-8")


_PLAIN = "local NOTIFY = 'PUBLISH'\n"
_SHARDED = "local NOTIFY = 'SPUBLISH'\n"
_CROSS_SLOT = "#!lua flags=allow-cross-slot-keys\n"


@cache
def load_all(sharded: bool = False) -> dict[str, Script]:
    lib = _read("lib")
    if sharded:
        if _PLAIN not in lib:
            raise AssertionError("lib.lua lost its NOTIFY constant")
        lib = _CROSS_SLOT + lib.replace(_PLAIN, _SHARDED)
    scripts = {}
    for name in NAMES:
        source = lib + _read(name)
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha)
    return scripts
