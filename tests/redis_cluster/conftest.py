"""Fixtures for the Cluster and Sentinel tests: fleets of engine proxies on real topologies.

The session-wide ``redis_cluster`` and ``redis_sentinel`` (tests/conftest.py) are shared
with the engine contract suite and are never damaged; tests that kill a node get a
topology of their own (``doomed_cluster``, ``doomed_sentinel``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.redis.conftest import Fleet
from tests.support.redis_cluster import ClusterTopology, SentinelTopology, running


@pytest.fixture
async def cluster_fleet(redis_cluster: ClusterTopology) -> AsyncIterator[Fleet]:
    fleet = Fleet(redis_cluster.url)
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
def doomed_cluster() -> Iterator[ClusterTopology]:
    """A Cluster of this test's own, for killing a master."""
    with running(ClusterTopology()) as topology:
        yield topology


@pytest.fixture
def doomed_sentinel() -> Iterator[SentinelTopology]:
    """A Sentinel set-up of this test's own, for killing its master."""
    with running(SentinelTopology()) as topology:
        yield topology
