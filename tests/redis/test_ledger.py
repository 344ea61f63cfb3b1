"""Layout 2's ledger of held clients (pure: no Redis): what a client costs in memory
while idle, and that its queues keep their order as they come and go."""

from __future__ import annotations

import sys
from collections import deque

from faye.envelope import Envelope
from faye.redis.layout2.ledger import Held, Ledger


def envelope(n: int) -> Envelope:
    return Envelope.from_message({"channel": "/a", "data": n})


def held_client(ledger: Ledger, cid: str = "alice") -> Held:
    held = Held(names={"/a": 0}, last=0, claimed_at=0)
    ledger.hold(cid, held)
    return held


def test_an_idle_client_holds_no_queue() -> None:
    ledger = Ledger(max_queue=100)
    held = held_client(ledger)
    assert held.pending is None and held.unacked is None
    # What was handed out and written leaves nothing behind either.
    ledger.queue(held, 1, envelope(1))
    items = held.take_pending()
    ledger.handed("alice", held, [seq for seq, _ in items])
    ledger.acknowledge("alice", 1)
    assert held.pending is None and held.unacked is None
    assert held.acked == 1 and held.handed == 1


def test_an_idle_client_costs_less_than_one_empty_deque() -> None:
    ledger = Ledger(max_queue=100)
    held = held_client(ledger)
    own = sys.getsizeof(held) + sys.getsizeof(held.names)
    assert own < sys.getsizeof(deque())


def test_messages_wait_hand_out_and_come_back_in_order() -> None:
    ledger = Ledger(max_queue=3)
    held = held_client(ledger)
    for seq in range(1, 6):
        ledger.queue(held, seq, envelope(seq))
    # The newest max_queue wait.
    assert [seq for seq, _ in held.pending or ()] == [3, 4, 5]
    first = held.take_pending(upto=4)
    assert [seq for seq, _ in first] == [3, 4]
    ledger.handed("alice", held, [3, 4])
    # The last one was not written: it goes back before what still waits.
    assert ledger.requeue("alice", [first[-1][1]])
    assert [seq for seq, _ in held.pending or ()] == [4, 5]
    assert held.handed == 3
    assert held.uncut == 0  # handed out, not written: nothing to cut yet
    ledger.acknowledge("alice", 1)
    assert held.acked == 3 and held.unacked is None
    assert held.uncut == 1
    assert [seq for seq, _ in held.take_pending()] == [4, 5]
    assert held.take_pending() == []
