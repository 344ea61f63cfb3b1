"""What permessage-deflate buys and costs per Bayeux message, under each setting.

    python bench/deflate_cost.py

Runs the ``websockets`` extension that ``faye serve`` negotiates (its terms from
``faye.transport.uvicorn_websocket``) in this process, without sockets, on typical
frames: a browser's ``/meta/connect`` and publish going in, and a reply going out (our
pre-built fan-out frames are never compressed). Prints the bytes on the wire and the
CPU per message, for a socket that keeps its contexts (``on``) and one that starts
each message afresh (``no-context-takeover``); the first message of a series is
excluded from the context-takeover figures (it pays what a fresh context pays).
"""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode

from faye.transport.uvicorn_websocket import deflate_extensions

CLIENT_ID = "k3xv9w2q8d1m7z0c4h6b5n"
#: Frames as a browser's Faye client sends and gets them; ``{n}`` is the message id,
#: which changes from one message to the next.
FRAMES: dict[str, str] = {
    "connect in": json.dumps([{"channel": "/meta/connect", "clientId": CLIENT_ID,
                               "connectionType": "websocket", "id": "{n}"}]),
    "same publish in": json.dumps([{"channel": "/chat/room-42", "clientId": CLIENT_ID, "id": "{n}",
                               "data": {"user": "ana", "text": "see you at the station at 6"}}]),
    "connect reply out": json.dumps([{"id": "{n}", "clientId": CLIENT_ID,
                                      "channel": "/meta/connect", "successful": True,
                                      "advice": {"reconnect": "retry", "interval": 0,
                                                 "timeout": 25000}}]),
}  # fmt: skip
ROUNDS = 2000


def pair(setting: str) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """(server side, client side) of a negotiation with a browser's offer."""
    factory = deflate_extensions(setting)[0]
    offer = [("client_max_window_bits", None)]
    response, server = factory.process_request_params(offer, [])  # type: ignore[attr-defined]
    client = ClientPerMessageDeflateFactory().process_response_params(response, [])
    return server, client


def per_message(setting: str, name: str, template: str) -> dict[str, Any]:
    server, client = pair(setting)
    payloads = [template.replace("{n}", format(n, "x")).encode() for n in range(ROUNDS + 1)]
    if name.endswith(" in"):
        work = [client.encode(Frame(Opcode.TEXT, p)) for p in payloads]
        timed = server.decode
    else:
        work = [Frame(Opcode.TEXT, p) for p in payloads]
        timed = server.encode
    first = timed(work[0])  # the first message of the socket
    start = time.process_time()
    out = [timed(frame) for frame in work[1:]]
    seconds = (time.process_time() - start) / ROUNDS
    wire = work if name.endswith(" in") else [first, *out]
    sizes = [len(frame.data) for frame in wire]
    return {
        "plain": sum(map(len, payloads[1:])) / ROUNDS,
        "first": sizes[0],
        "later": sum(sizes[1:]) / ROUNDS,
        "us": seconds * 1e6,
        "direction": "inflate" if name.endswith(" in") else "deflate",
    }


def main() -> None:
    print("| setting | frame | plain B | compressed B: first | later (mean) | server CPU |")
    print("|---|---|--:|--:|--:|--:|")
    for setting in ("on", "no-context-takeover"):
        for name, template in FRAMES.items():
            row = per_message(setting, name, template)
            print(
                f"| {setting} | {name} | {row['plain']:.0f} | {row['first']} "
                f"| {row['later']:.0f} | {row['us']:.1f} µs ({row['direction']}) |"
            )


if __name__ == "__main__":
    main()
