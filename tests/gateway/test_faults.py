"""Each FaultPlan fault does what it says (the client provider's tests rely on them)."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import HEADERS, client, create, drain_until_closed, gateway, next_event, run, silence
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from voxlane.gateway import FaultPlan
from voxlane.gateway import protocol as p
from voxlane.gateway.faults import GARBAGE_FRAMES, parse_fault


def test_refuse_connections_answers_503_and_creates_nothing() -> None:
    async def main() -> None:
        async with gateway(faults=FaultPlan(refuse_connections=True)) as server:
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.stt_url, additional_headers=HEADERS, open_timeout=5):
                    pass
            assert info.value.response.status_code == 503
            assert [r.http_status for r in server.connection_log] == [503]
            assert server.connection_log[0].session_ids == []

    run(main())


def test_drop_after_frames_aborts_the_connection_without_a_close_frame() -> None:
    async def main() -> None:
        async with gateway(faults=FaultPlan(drop_after_frames=5)) as server:
            async with client(server.stt_url) as ws:
                await create(ws)
                with pytest.raises(ConnectionClosedError):
                    for _ in range(200):
                        await ws.send(silence(0.02))
                        await asyncio.sleep(0.005)
                    await ws.recv()
                assert ws.close_code is None or ws.close_code == 1006
            record = server.connection_log[-1]
            assert record.audio_frames == 5
            assert record.close_reason == "fault_drop"

    run(main())


def test_response_delay_delays_every_event() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with (
            gateway(faults=FaultPlan(response_delay_s=0.3)) as server,
            client(server.stt_url) as ws,
        ):
            t0 = loop.time()
            assert (await create(ws))["type"] == "session.created"
            t1 = loop.time()
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            assert (await next_event(ws))["type"] == "session.finalized"
            t2 = loop.time()
        assert t1 - t0 >= 0.3 and t2 - t1 >= 0.3

    run(main())


def test_early_idle_sends_2007_while_audio_is_flowing() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        plan = FaultPlan(early_idle_s=0.3)
        async with gateway(faults=plan, idle_timeout_s=30) as server, client(server.stt_url) as ws:
            await create(ws)
            t0 = loop.time()

            async def feed() -> None:
                while True:
                    await ws.send(silence(0.02))
                    await asyncio.sleep(0.02)

            feeder = asyncio.create_task(feed())
            try:
                events = await drain_until_closed(ws)
            finally:
                feeder.cancel()
                await asyncio.wait({feeder}, timeout=1)
            elapsed = loop.time() - t0
            assert [e["code"] for e in events] == [2007]
            assert ws.close_code == 1000
            assert 0.25 <= elapsed <= 1.5

    run(main())


def test_send_garbage_sends_unparseable_frames_then_the_session_goes_on() -> None:
    async def main() -> None:
        async with (
            gateway(faults=FaultPlan(send_garbage=True)) as server,
            client(server.stt_url) as ws,
        ):
            await ws.send(p.encode_client_message(p.SessionCreate()))
            assert json.loads(await ws.recv())["type"] == "session.created"
            codes = []
            for expected in GARBAGE_FRAMES:
                raw = await ws.recv()
                assert raw == expected
                with pytest.raises(p.ProtocolViolation) as info:
                    p.parse_server_event(str(raw))
                codes.append(info.value.code)
            assert codes == [
                p.ErrorCode.MALFORMED_JSON,
                p.ErrorCode.UNKNOWN_MESSAGE_TYPE,
                p.ErrorCode.INVALID_MESSAGE,
            ]
            await ws.send(p.encode_client_message(p.SessionClose()))
            assert await drain_until_closed(ws) == [{"type": "session.closed"}]

    run(main())


def test_parse_fault_builds_a_plan() -> None:
    plan = parse_fault("drop_after_frames=3", parse_fault("refuse_connections=true"))
    assert plan == FaultPlan(drop_after_frames=3, refuse_connections=True)
    with pytest.raises(ValueError):
        parse_fault("explode=1")
