"""Kill the master while messages flow between two servers; measure the gap and the loss.

Each test gets a topology of its own. The master is killed with SIGKILL about a
second into the flow; publishing goes on for 8 s more, then deliveries drain. The
numbers are printed (run with ``-s`` to see them) and checked: no crash, no hang,
everything published after the failover arrives without a restart, and nothing is lost
but what the dead master accepted within a moment of its death (replication is
asynchronous).
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from faye.redis import RedisEngine
from tests.redis.conftest import Fleet, engine_of
from tests.redis_cluster.flow import FLOW_CHANNEL, run_flow
from tests.support.redis_cluster import ClusterTopology, SentinelTopology

#: Both key layouts (the ``layout`` option); layout 2 keeps one partition.
LAYOUTS = pytest.mark.parametrize("layout", [1, 2], ids=["layout1", "layout2"])


def layout_options(layout: int) -> dict[str, Any]:
    return {"layout": layout}


@LAYOUTS
async def test_cluster_master_killed_while_messages_flow(
    doomed_cluster: ClusterTopology, layout: int
) -> None:
    fleet = Fleet(doomed_cluster.url)
    try:
        # The master holding the flow's channel (its home partition) dies, and with it
        # the records of the subscribers whose partitions it holds.
        probe = await fleet.proxy(**layout_options(layout))
        engine: RedisEngine = engine_of(probe)
        home = engine.keys.home(FLOW_CHANNEL)
        victim = doomed_cluster.master_of_slot(key_slot(engine.keys.clients(home).encode()))
        partitions_on_victim = sum(
            1
            for p in range(engine.keys.partitions)
            if doomed_cluster.master_of_slot(key_slot(engine.keys.clients(p).encode())) is victim
        )
        report = await run_flow(
            fleet, lambda: victim.stop(kill=True), options=layout_options(layout)
        )
    finally:
        await fleet.close()
    print(
        f"\ncluster failover, layout {layout} ({partitions_on_victim}/"
        f"{engine.keys.partitions} partitions on the victim):"
    )
    print(report.summary())
    report.assert_recovered()
    report.assert_loss_confined()
    assert report.max_silence < 10


@LAYOUTS
async def test_sentinel_master_killed_while_messages_flow(
    doomed_sentinel: SentinelTopology, layout: int
) -> None:
    fleet = Fleet(doomed_sentinel.url)
    try:
        report = await run_flow(
            fleet,
            lambda: doomed_sentinel.master.stop(kill=True),
            options=layout_options(layout),
        )
    finally:
        await fleet.close()
    print(f"\nsentinel failover, layout {layout}:", report.summary())
    report.assert_recovered()
    report.assert_loss_confined()
    assert report.max_silence < 10
