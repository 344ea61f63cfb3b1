"""How the delivery lane packs its operations for ``deliveries.lua``.

Every Redis test runs these through the real script; this pins the packing itself:
order kept, runs of C/W/A joined into one argument, anything odd sent item by item.
"""

from __future__ import annotations

from faye.redis.layout1.deliveries import LaneOp, encode_ops
from faye.redis.layout1.functions import Op


def test_runs_of_simple_operations_share_one_argument_and_keep_order() -> None:
    ops = [
        LaneOp(Op.WAKE, "alice", 0, ["0"]),
        LaneOp(Op.ACK, "bob", 0, [3]),
        LaneOp(Op.REQUEUE, "bob", 0, [b'{"channel":"/a"}', b"\n"]),
        LaneOp(Op.CONNECT, "carol", 0, ["1"]),
    ]
    assert encode_ops(ops) == [
        "#W0:alice\nA3:bob",
        "R",
        "bob",
        2,
        b'{"channel":"/a"}',
        b"\n",
        "#C1:carol",
    ]


def test_a_client_id_that_could_break_a_line_goes_item_by_item() -> None:
    ops = [
        LaneOp(Op.WAKE, "odd\nid", 0, ["0"]),
        LaneOp(Op.WAKE, "", 0, ["0"]),
        LaneOp(Op.ACK, "x:y", 0, [1]),
    ]
    assert encode_ops(ops) == ["W", "odd\nid", 1, "0", "W", "", 1, "0", "#A1:x:y"]


def test_a_drain_carries_the_acknowledgement_held_back_for_its_client() -> None:
    ops = [LaneOp(Op.WAKE, "alice", 0, ["0", 3]), LaneOp(Op.CONNECT, "bob", 0, ["1"])]
    assert encode_ops(ops) == ["#W0+3:alice\nC1:bob"]
