"""An agent for the worker tests: its tools misbehave on request (the LLM script of each
synthetic call decides which tool runs); ``metadata`` can add a hanging shutdown callback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from voxlane import Agent, RunContext, function_tool
from voxlane.worker.context import JobContext, current_job_context


class Misbehaving(Agent):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__(instructions="A test agent.")
        if ctx.metadata.get("hang_shutdown"):
            ctx.add_shutdown_callback(self.hang_forever)
        if ctx.metadata.get("ok_shutdown"):
            ctx.add_shutdown_callback(self.quick)

    async def hang_forever(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # swallow: a shutdown callback that will not stop

    async def quick(self) -> None:
        await asyncio.sleep(0)

    async def on_enter(self) -> None:
        self.session.generate_reply()

    @function_tool
    async def block(self, ctx: RunContext, seconds: float) -> str:
        """Block the event loop."""
        time.sleep(seconds)  # noqa: ASYNC251 - the misbehaviour under test
        return "blocked"

    @function_tool
    async def ignore_sigterm_and_block(self, ctx: RunContext, seconds: float) -> str:
        """Ignore SIGTERM, then block the event loop."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(seconds)  # noqa: ASYNC251 - the misbehaviour under test
        return "blocked"

    @function_tool
    async def whoami(self, ctx: RunContext) -> str:
        """The job this tool runs in."""
        return current_job_context().job_id

    @function_tool
    async def garble(self, ctx: RunContext) -> str:
        """Write garbage into the job's IPC channel (an oversized frame header)."""
        fd = int(sys.argv[sys.argv.index("--fd") + 1])
        os.write(fd, b"\xff\xff\xff\xff")
        return "garbled"

    @function_tool
    async def hang_up(self, ctx: RunContext) -> str:
        """End the call from the agent's side (the session closes first)."""
        self.session.shutdown()
        return "goodbye"

    @function_tool
    async def crash(self, ctx: RunContext, code: int) -> str:
        """End the process at once."""
        os._exit(code)


def create_agent(ctx: JobContext) -> Agent:
    return Misbehaving(ctx)
