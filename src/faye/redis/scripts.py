"""The engine's Lua scripts, read from the ``lua/`` files and run by EVALSHA.

Each script is ``lib.lua`` followed by its own file. Scripts are loaded with SCRIPT
LOAD when the engine starts and again whenever Redis answers NOSCRIPT (after a
restart or SCRIPT FLUSH): a NOSCRIPT reply means the script did not run, so running
it again after loading cannot duplicate anything.
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


@cache
def load_all() -> dict[str, Script]:
    lib = _read("lib")
    scripts = {}
    for name in NAMES:
        source = lib + _read(name)
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha)
    return scripts
