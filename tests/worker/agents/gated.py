"""An agent file that loads slowly on purpose: importing it waits (bounded, 60 s) until the
file named by ``VOXLANE_TEST_GATE`` exists. A worker's job processes load it while they
warm up, so a test decides when the worker's pool becomes warm."""

from __future__ import annotations

import os
import time
from pathlib import Path

from voxlane import Agent

_gate = os.environ.get("VOXLANE_TEST_GATE")
_deadline = time.monotonic() + 60.0
while _gate and not Path(_gate).exists() and time.monotonic() < _deadline:
    time.sleep(0.05)


class Gated(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="A test agent.")

    async def on_enter(self) -> None:
        self.session.generate_reply()
