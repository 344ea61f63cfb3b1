"""Redis Cluster and Sentinel specifics: slots, round trips, sharded pub/sub, real servers.

The engine contract suite runs on both topologies through the ``engines`` fixture
(tests/conftest.py); these tests check what only a Cluster or Sentinel has.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot

from faye.redis import RedisOptions
from faye.redis.packing import HiredisPacking
from tests.redis.conftest import Fleet, engine_of
from tests.support.bayeux import post
from tests.support.engines import CollectingSocket, attach
from tests.support.processes import FayeServer
from tests.support.redis_cluster import ClusterTopology, SentinelTopology
from tests.support.waiting import wait_for


def commandstat(port: int, command: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


# -- options -------------------------------------------------------------------------------


def test_cluster_and_sentinel_urls() -> None:
    o = RedisOptions.parse({"url": "redis+cluster://u:p%40w@10.0.0.1:7000,10.0.0.2:7001"})
    assert o.mode == "cluster"
    assert o.addresses("cluster") == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (o.username, o.password, o.partition_count) == ("u", "p@w", 16)
    assert RedisOptions.parse({"cluster": ["h:1"], "partitions": 64}).partition_count == 64
    assert RedisOptions.parse({"cluster": "h1:1,h2"}).addresses("cluster") == [
        ("h1", 1),
        ("h2", 6379),
    ]
    s = RedisOptions.parse(
        {"url": "redis+sentinel://:secret@s1:26380,s2/mymaster/3", "sentinel_password": "sp"}
    )
    assert s.mode == "sentinel"
    assert s.addresses("sentinels") == [("s1", 26380), ("s2", 26379)]
    assert (s.service_name, s.database, s.password, s.sentinel_password) == (
        "mymaster",
        3,
        "secret",
        "sp",
    )
    assert s.partition_count == 1
    m = RedisOptions.parse({"sentinels": ["s:1"], "master_name": "m"})
    assert m.service_name == "m"
    assert RedisOptions.parse({"url": "rediss+cluster://h:1"}).ssl.enabled


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "redis+sentinel://s1:1"}, "service name"),
        ({"url": "redis+cluster://h:1/2"}, "database 0"),
        ({"url": "redis+cluster://h:x"}, "bad port"),
        ({"sentinels": ["s:1"]}, "service_name"),
        ({"service_name": "m"}, "sentinels"),
        ({"cluster": ["a:1"], "sentinels": ["s:1"], "service_name": "m"}, "exclude"),
        ({"cluster": 5}, "host:port"),
        ({"cluster": ["a:1"], "database": 1}, "database"),
    ],
)
def test_bad_cluster_and_sentinel_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisOptions.parse(options)


# -- Cluster ---------------------------------------------------------------------------------


async def test_partitions_spread_evenly_over_the_masters(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology
) -> None:
    engine = engine_of(await cluster_fleet.proxy())
    assert engine.keys.partitions == 16
    owners = [
        redis_cluster.master_of_slot(key_slot(engine.keys.clients(p).encode())).port
        for p in range(16)
    ]
    assert sorted(owners.count(port) for port in set(owners)) == [5, 5, 6]


def count_round_trips(monkeypatch: pytest.MonkeyPatch, engine: Any) -> dict[str, int]:
    """Round trips (commands or pipelines) each master receives from ``engine``."""
    sent: dict[str, int] = {}
    ours = {id(node) for node in engine.redis.client.get_nodes()}
    command, pipeline = ClusterNode.execute_command, ClusterNode.execute_pipeline

    def counted(original: Any) -> Any:
        async def wrapper(node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
            if id(node) in ours:  # not another engine's drains
                sent[node.name] = sent.get(node.name, 0) + 1
            return await original(node, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(ClusterNode, "execute_command", counted(command))
    monkeypatch.setattr(ClusterNode, "execute_pipeline", counted(pipeline))
    return sent


async def test_a_publish_is_one_round_trip_to_the_master_of_its_channel(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many partitions the subscribers' records are spread over."""
    publisher = await cluster_fleet.proxy()
    holder = await cluster_fleet.proxy()
    inboxes, records = [], set()
    keys = engine_of(holder).keys
    for _ in range(40):  # records in (nearly) every partition
        client_id = await holder.create_client()
        records.add(keys.partition(client_id))
        await holder.subscribe(client_id, "/rt")
        inboxes.append(await attach(holder, client_id))
    assert len(records) > 10
    home = redis_cluster.master_of_slot(key_slot(keys.clients(keys.home("/rt")).encode()))
    sent = count_round_trips(monkeypatch, engine_of(publisher))
    await publisher.publish({"channel": "/rt", "data": 1})
    monkeypatch.undo()
    assert sent == {f"127.0.0.1:{home.port}": 1}
    for _ in range(100):
        if all(inbox.messages for inbox in inboxes):
            break
        await asyncio.sleep(0.02)
    assert all(len(inbox.messages) == 1 for inbox in inboxes)


async def test_a_client_with_many_homes_gets_everything_on_a_server_new_to_it(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued on 30 channels (spread over the partitions) and a wildcard, while no
    connection is held; the first connect, on a server that never saw the client,
    learns its homes from its record and drains them all, one round trip per master
    for each of the two steps."""
    first = await cluster_fleet.proxy()
    second = await cluster_fleet.proxy()
    publisher = await cluster_fleet.proxy()
    alice = await first.create_client()
    channels = [f"/many/{n}" for n in range(30)]
    keys = engine_of(first).keys
    assert len({keys.home(c) for c in channels}) > 10
    for channel in channels:
        await first.subscribe(alice, channel)
    await first.subscribe(alice, "/wild/*")
    for n, channel in enumerate(channels):
        await publisher.publish({"channel": channel, "data": n})
    await publisher.publish({"channel": "/wild/card", "data": "w"})
    inbox = CollectingSocket()
    second.open_socket(alice, inbox)
    sent = count_round_trips(monkeypatch, engine_of(second))
    await second.backend.connect(alice)
    monkeypatch.undo()
    assert sorted(m["data"] for m in inbox.messages if m["data"] != "w") == list(range(30))
    assert [m["data"] for m in inbox.messages].count("w") == 1
    masters = {f"127.0.0.1:{m.port}" for m in redis_cluster.masters()}
    assert set(sent) <= masters
    assert all(n <= 2 for n in sent.values()), sent  # the record, then every home
    # Now it knows them: the next connect is one round trip per master.
    sent = count_round_trips(monkeypatch, engine_of(second))
    await second.backend.connect(alice)
    monkeypatch.undo()
    assert all(n == 1 for n in sent.values()), sent


def stale_slot_map(monkeypatch: pytest.MonkeyPatch, engine: Any) -> list[int]:
    """Make the engine believe one master serves every partition (a stale slot map: the
    moment a resharding makes one cannot be caused on purpose). Returns the sizes of
    the groups it was asked for."""
    asked: list[int] = []

    async def one_master(keys: Any) -> list[list[int]]:
        asked.append(len(keys))
        return [list(range(len(keys)))]

    monkeypatch.setattr(engine.redis, "group_by_master", one_master)
    return asked


async def test_a_drain_is_one_script_call_per_master_and_survives_a_stale_slot_map(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connect drains the client's homes with one deliveries call per master (its
    partitions' slots differ). The grouping comes from redis-py's slot map; if that is
    stale (a resharding moved a slot in between, a timing no test can cause on purpose,
    so here the map is made to lie), the call does nothing and each partition is sent on
    its own: everything is delivered, once."""
    first = await cluster_fleet.proxy()
    publisher = await cluster_fleet.proxy()
    engine = engine_of(first)
    keys = engine.keys
    alice = await first.create_client()
    channels = [f"/stale/{n}" for n in range(12)]
    for channel in channels:
        await first.subscribe(alice, channel)
    homes = {keys.home(c) for c in channels} | {keys.partition(alice)}
    masters = {redis_cluster.master_of_slot(key_slot(keys.clients(p).encode())) for p in homes}
    assert len(masters) > 1 and len(homes) > len(masters)
    for n, channel in enumerate(channels):
        await publisher.publish({"channel": channel, "data": n})

    lied = stale_slot_map(monkeypatch, engine)
    inbox = CollectingSocket()
    first.open_socket(alice, inbox)
    await first.backend.connect(alice)
    monkeypatch.undo()
    assert lied and max(lied) > len(masters)  # batches that spanned masters
    assert sorted(m["data"] for m in inbox.messages) == list(range(12))
    # With the true map: one script call per master, however many partitions it holds.
    before = {m.port: commandstat(m.port, "fcall") for m in masters}
    for n, channel in enumerate(channels):
        await publisher.publish({"channel": channel, "data": 12 + n})
    await asyncio.sleep(0.2)  # the wake-ups drain what the publishes queued
    calls = {m.port: commandstat(m.port, "fcall") - before[m.port] for m in masters}
    await first.backend.connect(alice)
    after = {m.port: commandstat(m.port, "fcall") - before[m.port] for m in masters}
    assert all(after[port] - calls[port] == 1 for port in after), (calls, after)
    assert sorted(m["data"] for m in inbox.messages) == list(range(24))


async def test_a_burst_of_publishes_survives_a_stale_slot_map(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishes of one turn share one call per master; with a stale slot map (made to
    lie, as above) the call queues nothing and each partition's publishes go on their
    own: every message arrives, once."""
    publisher = await cluster_fleet.proxy()
    holder = await cluster_fleet.proxy()
    keys = engine_of(publisher).keys
    channels = [f"/burst/{n}" for n in range(12)]
    masters = {
        redis_cluster.master_of_slot(key_slot(keys.clients(keys.home(c)).encode()))
        for c in channels
    }
    assert len(masters) > 1
    alice = await holder.create_client()
    for channel in channels:
        await holder.subscribe(alice, channel)
    inbox = await attach(holder, alice)

    lied = stale_slot_map(monkeypatch, engine_of(publisher))
    await asyncio.gather(
        *(publisher.publish({"channel": c, "data": n}) for n, c in enumerate(channels))
    )
    monkeypatch.undo()
    assert lied and max(lied) > len(masters)
    for _ in range(100):
        if len(inbox.messages) >= len(channels):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert sorted(m["data"] for m in inbox.messages) == list(range(len(channels)))


async def test_destroying_a_client_leaves_no_key_in_any_partition(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology
) -> None:
    holder = await cluster_fleet.proxy()
    alice = await holder.create_client()
    for n in range(12):
        await holder.subscribe(alice, f"/gone/{n}")
    await holder.subscribe(alice, "/gone/**")
    await attach(holder, alice)
    await holder.backend.connect(alice)
    await holder.publish({"channel": "/gone/3", "data": 1})
    removed = await holder.backend.destroy_client(alice)
    assert removed == sorted([*(f"/gone/{n}" for n in range(12)), "/gone/**"])

    def mentions() -> list[str]:
        found = []
        for master in redis_cluster.masters():
            client = redis.Redis(host="127.0.0.1", port=master.port, decode_responses=True)
            try:
                for key in client.scan_iter(count=1000):
                    kind = client.type(key)
                    members: list[str] = []
                    if kind == "set":
                        members = list(client.smembers(key))
                    elif kind == "hash":
                        members = list(client.hkeys(key))
                    elif kind == "zset":
                        members = list(client.zrange(key, 0, -1))
                    if alice in key or alice in members:
                        found.append(key)
            finally:
                client.close()
        return found

    assert mentions() == []


async def test_a_notification_stays_in_the_shard_of_its_partition(
    cluster_fleet: Fleet, redis_cluster: ClusterTopology
) -> None:
    publisher = await cluster_fleet.proxy()
    holder = await cluster_fleet.proxy()
    alice = await holder.create_client()
    await holder.subscribe(alice, "/shard")
    inbox = await attach(holder, alice)
    keys = engine_of(holder).keys
    owner = redis_cluster.master_of_slot(key_slot(keys.clients(keys.home("/shard")).encode())).port
    masters = [n.port for n in redis_cluster.masters()]
    before = {port: commandstat(port, "spublish") for port in masters}
    plain = sum(commandstat(port, "publish") for port in masters)
    await publisher.publish({"channel": "/shard", "data": "x"})
    await wait_for(lambda: inbox.messages, timeout=2.0)
    assert [m["data"] for m in inbox.messages] == ["x"]
    after = {port: commandstat(port, "spublish") for port in masters}
    assert after[owner] - before[owner] == 1
    assert all(after[p] == before[p] for p in masters if p != owner)
    assert sum(commandstat(port, "publish") for port in masters) == plain


async def test_subscriptions_follow_a_resharded_slot(doomed_cluster: ClusterTopology) -> None:
    """Move a channel's home slot to another master while it is used: MOVED, ASK,
    resubscribe. The target has no function library (FUNCTION FLUSH: as a node added to
    the Cluster empty would be): its first calls load it."""
    fleet = Fleet(doomed_cluster.url)
    try:
        publisher = await fleet.proxy(retry_delay=0.1)
        holder = await fleet.proxy(retry_delay=0.1)
        alice = await holder.create_client()
        await holder.subscribe(alice, "/moving")
        inbox = await attach(holder, alice)
        keys = engine_of(holder).keys
        slot = key_slot(keys.clients(keys.home("/moving")).encode())
        source = doomed_cluster.master_of_slot(slot)
        target = next(m for m in doomed_cluster.masters() if m is not source)

        async def flow(start: int) -> None:
            for n in range(start, start + 5):
                await publisher.publish({"channel": "/moving", "data": n})

        async def received(count: int) -> None:
            # Generous: after the move the listener must notice and resubscribe first.
            for _ in range(500):
                if len(inbox.messages) >= count:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"only {len(inbox.messages)} of {count} arrived")

        await flow(0)
        await received(5)
        src = redis.Redis(host="127.0.0.1", port=source.port, decode_responses=True)
        dst = redis.Redis(host="127.0.0.1", port=target.port, decode_responses=True)
        try:
            src_id, dst_id = src.cluster("myid"), dst.cluster("myid")
            dst.function_flush()
            dst.cluster("setslot", slot, "importing", src_id)
            src.cluster("setslot", slot, "migrating", dst_id)
            # All of the partition's keys in one MIGRATE: scripts must not run while a
            # partition is split between two nodes (see docs/redis.md, Redis Cluster).
            names = src.cluster("getkeysinslot", slot, 10000)
            src.migrate("127.0.0.1", target.port, names, 0, 5000)
            await flow(5)  # keys on the target: every call is answered with ASK
            for client in (dst, src):
                client.cluster("setslot", slot, "node", dst_id)
            for node in doomed_cluster.masters():
                if node not in (source, target):
                    with redis.Redis(host="127.0.0.1", port=node.port) as other:
                        other.cluster("setslot", slot, "node", dst_id)
        finally:
            src.close()
            dst.close()
        await received(10)
        await flow(10)  # now MOVED, and the listener must be subscribed on the new master
        await received(15)
        assert sorted(m["data"] for m in inbox.messages) == list(range(15))
        with redis.Redis(host="127.0.0.1", port=target.port) as node:
            assert node.function_list()  # loaded again
    finally:
        await fleet.close()


# -- real servers ------------------------------------------------------------------------------


@pytest.fixture(params=["cluster", "sentinel"])
def topology_url(
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    if request.param == "cluster":
        cluster: ClusterTopology = request.getfixturevalue("redis_cluster")
        yield cluster.url
    else:
        sentinel: SentinelTopology = request.getfixturevalue("redis_sentinel")
        yield sentinel.url


@pytest.mark.parametrize("layout", [1, 2], ids=["layout1", "layout2"])
async def test_two_faye_serve_processes_share_the_topology(topology_url: str, layout: int) -> None:
    namespace = f"serve-{uuid.uuid4().hex[:8]}"
    servers = [
        FayeServer(
            "--redis",
            topology_url,
            "--namespace",
            namespace,
            "--log-level",
            "warning",
            "--engine-option",
            f"layout={layout}",
        )
        for _ in range(2)
    ]
    try:
        for server in servers:
            server.start()
        a, b = (s.url for s in servers)
        async with httpx.AsyncClient(timeout=10) as http:
            (hs,) = await post(
                http,
                a,
                {
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"],
                },
            )
            alice = hs["clientId"]
            replies = await post(
                http,
                b,
                [
                    {"channel": "/meta/subscribe", "clientId": alice, "subscription": "/t/*"},
                    {
                        "channel": "/meta/connect",
                        "clientId": alice,
                        "connectionType": "long-polling",
                        "advice": {"timeout": 0},
                    },
                ],
            )
            assert all(r["successful"] for r in replies), replies
            held = asyncio.ensure_future(
                post(
                    http,
                    a,
                    {
                        "channel": "/meta/connect",
                        "clientId": alice,
                        "connectionType": "long-polling",
                    },
                )
            )
            await asyncio.sleep(0.3)
            await post(http, b, {"channel": "/t/x", "data": "across", "id": "m1"})
            got = await asyncio.wait_for(held, 10)
            assert got[1:] == [{"channel": "/t/x", "data": "across", "id": "m1"}]
    finally:
        for server in servers:
            server.stop()


async def test_every_connection_packs_commands_with_hiredis(topology_url: str) -> None:
    """The engine's connections on a Cluster (every node, found or given) and behind
    Sentinel are the hiredis-packing ones, and carry traffic."""
    fleet = Fleet(topology_url)
    try:
        proxy = await fleet.proxy()
        alice = await proxy.create_client()
        await proxy.subscribe(alice, "/packed")
        inbox = await attach(proxy, alice)
        await proxy.publish({"channel": "/packed", "data": "é"})
        await wait_for(lambda: inbox.messages, timeout=2.0)
        assert [m["data"] for m in inbox.messages] == ["é"]
        client = engine_of(proxy).redis.client
        if hasattr(client, "get_nodes"):
            classes = {node.connection_class for node in client.get_nodes()}
        else:
            classes = {client.connection_pool.connection_class}
        assert classes and all(issubclass(c, HiredisPacking) for c in classes), classes
    finally:
        await fleet.close()
