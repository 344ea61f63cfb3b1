"""A handled batch leaves its deliveries to the transport: acknowledged once written,
put back for the next connect when the write failed."""

from __future__ import annotations

from faye.server import Server
from tests.support.server import REMOTE, connect_msg, poll, process, subscribed_client


async def test_written_deliveries_are_not_delivered_again(server: Server) -> None:
    subscriber = await subscribed_client(server, "/x")
    await process(server, {"channel": "/x", "data": 1})
    batch = await server.handle(connect_msg(subscriber, timeout_ms=0), REMOTE)
    assert [client_id for client_id, _ in batch.deliveries] == [subscriber]
    deliveries = server.proxy.counts["deliveries"]
    batch.written()
    assert server.proxy.counts["deliveries"] == deliveries + 1
    assert batch.deliveries == []
    assert (await poll(server, subscriber))[1:] == []


async def test_unwritten_deliveries_reach_the_next_connect(server: Server) -> None:
    subscriber = await subscribed_client(server, "/x")
    await process(server, [{"channel": "/x", "data": 1}, {"channel": "/x", "data": 2}])
    batch = await server.handle(connect_msg(subscriber, timeout_ms=0), REMOTE)
    assert len(batch.replies) == 3
    deliveries = server.proxy.counts["deliveries"]
    batch.unwritten()
    batch.written()  # settled once: nothing left to acknowledge
    assert server.proxy.counts["deliveries"] == deliveries
    replies = await poll(server, subscriber)
    assert [reply["data"] for reply in replies[1:]] == [1, 2]


async def test_a_batch_without_connects_carries_no_deliveries(server: Server) -> None:
    subscriber = await subscribed_client(server, "/x")
    batch = await server.handle({"channel": "/x", "data": 1, "clientId": subscriber}, REMOTE)
    assert batch.deliveries == []
    assert batch.replies[0]["successful"] is True  # type: ignore[index]
