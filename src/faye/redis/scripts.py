"""The engine's Lua code: one set of files, run as a function library or as scripts.

Each file after ``lib.lua`` defines ``main(KEYS, ARGV)``; its helpers and the state
they share are locals beside it, which ``main`` sets from its arguments first.

* On Redis 7.0+ the files form one *function library*, loaded once per master
  (FUNCTION LOAD) and called by FCALL. The helpers are built once, when the library
  loads. A script is run from its top on every call, so its thirty-odd local
  functions would be built again for each one, before any work.
* On Redis 6.2, or where an ACL refuses FUNCTION LOAD, each file is a script
  (``lib.lua``, the file, then a call of ``main``) run by EVALSHA.

Library and function names carry a hash of the code, so servers of different versions
sharing a Redis (a rolling upgrade) each call their own. A library is loaded again
whenever Redis answers that the function or script is missing (a restart without
persistence, FUNCTION FLUSH or SCRIPT FLUSH, a new Cluster node): such an answer means
nothing ran, so running the call again after loading cannot duplicate anything.

On a Redis Cluster the code notifies with SPUBLISH instead of PUBLISH (sharded pub/sub):
the same sources with ``lib.lua``'s ``NOTIFY`` constant switched, and every entry point
declaring ``allow-cross-slot-keys`` (Redis 7.0+, which sharded pub/sub needs anyway):
one ``deliveries`` call serves all the partitions a master holds, whose keys sit in
different slots of that master.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

NAMES = ("publish", "deliveries", "subscribe", "unsubscribe", "destroy", "recover", "unlock")

#: Layout 2 (channel logs, see faye.redis.layout2): its own helpers, files and library name,
#: so that the two layouts' code never mixes.
LOG_NAMES = (
    "log_publish",
    "log_subscribe",
    "log_unsubscribe",
    "log_destroy",
    "log_claim",
    "log_cursors",
    "log_return",
    "unlock",
)

#: layout -> (helpers file, entry files, library name prefix)
_LAYOUTS = {1: ("lib", NAMES, "faye"), 2: ("log_lib", LOG_NAMES, "faye2")}


@dataclass(frozen=True)
class Script:
    name: str
    #: The file as a script, for EVALSHA.
    source: str
    sha: str
    #: Its function in the library, for FCALL.
    function: str


@dataclass(frozen=True)
class Library:
    name: str
    source: str
    scripts: dict[str, Script]


def _read(name: str) -> str:
    return resources.files("faye.redis").joinpath("lua", f"{name}.lua").read_text("utf-8")


_PLAIN = "local NOTIFY = 'PUBLISH'\n"
_SHARDED = "local NOTIFY = 'SPUBLISH'\n"
_CROSS_SLOT = "#!lua flags=allow-cross-slot-keys\n"
_MAIN = "local function main(KEYS, ARGV)\n"


def _lib(sharded: bool, helpers: str = "lib") -> str:
    lib = _read(helpers) + _read("replay")
    if _PLAIN not in lib:
        raise AssertionError(f"{helpers}.lua lost its NOTIFY constant")
    return lib.replace(_PLAIN, _SHARDED) if sharded else lib


@cache
def library(sharded: bool = False, layout: int = 1) -> Library:
    """The library and, for servers without functions, the same code as scripts."""
    helpers, names, base = _LAYOUTS[layout]
    lib, files = _lib(sharded, helpers), {name: _read(name) for name in names}
    for name, text in files.items():
        if _MAIN not in text:
            raise AssertionError(f"{name}.lua defines no main(KEYS, ARGV)")
    tag = hashlib.sha1("\0".join([lib, *files.values()]).encode("utf-8")).hexdigest()[:12]
    prefix = f"{base}_{tag}"
    flags = ", flags={'allow-cross-slot-keys'}" if sharded else ""
    parts = [f"#!lua name={prefix}\n", lib]
    scripts = {}
    for name, text in files.items():
        function = f"{prefix}_{name}"
        # Each file in a block of its own: its locals are its own, as in a script.
        parts.append(
            f"do\n{text}redis.register_function{{function_name='{function}', "
            f"callback=main{flags}}}\nend\n"
        )
        source = (_CROSS_SLOT if sharded else "") + lib + text + "return main(KEYS, ARGV)\n"
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha, function)
    return Library(prefix, "".join(parts), scripts)


def load_all(sharded: bool = False, layout: int = 1) -> dict[str, Script]:
    return library(sharded, layout).scripts
