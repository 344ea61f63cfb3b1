"""What a server receives on its channel ``w:<sid>``, parsed.

A PUBLISH of the publish function carries one line per message, ``<seq> <channel>
<message JSON>``; the JSON holds no raw newline (it is encoded compactly). Control
lines start with a letter (:class:`Control`) and come one per PUBLISH.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum


class Control(Enum):
    """A control line's first letter."""

    #: ``s <cid> <seq> <name>``: a client held here subscribed (maybe through another
    #: server), from sequence number ``seq`` on.
    SUBSCRIBED = "s"
    #: ``u <cid> <name>``: a client held here unsubscribed.
    UNSUBSCRIBED = "u"
    #: ``m <cid> <seq>``: another server took the client over when the clock said
    #: ``seq``: forget it, unless this server claimed it again since.
    MOVED = "m"
    #: ``r <cid> <seq>,<seq>...``: the server that held the client before recorded
    #: these as handed out and never wrote them: send again those the take-over skipped.
    RETURNED = "r"


@dataclass(frozen=True, slots=True)
class Published:
    seq: int
    channel: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class ControlLine:
    kind: Control
    client_id: str
    seq: int
    name: str
    #: RETURNED: the sequence numbers given back.
    seqs: tuple[int, ...] = ()


Line = Published | ControlLine


def parse(data: bytes) -> Iterator[Line]:
    """The lines of one pub/sub message; raises ValueError on a malformed one."""
    if data[:1].isdigit():
        for line in data.split(b"\n"):
            seq, channel, raw = line.split(b" ", 2)
            yield Published(int(seq), channel.decode(), raw)
        return
    kind = Control(data[:1].decode())
    text = data[2:].decode()
    if kind is Control.SUBSCRIBED:
        cid, number, name = text.split(" ", 2)
        yield ControlLine(kind, cid, int(number), name)
    elif kind is Control.UNSUBSCRIBED:
        cid, name = text.split(" ", 1)
        yield ControlLine(kind, cid, 0, name)
    elif kind is Control.RETURNED:
        cid, numbers = text.split(" ", 1)
        yield ControlLine(kind, cid, 0, "", tuple(int(n) for n in numbers.split(",")))
    else:
        cid, number = text.split(" ", 1)
        yield ControlLine(kind, cid, int(number), "")
