"""voxlane's testing kit — shipped for users' own agent tests too.

Fakes that record open/close in the resource ledger, misbehaving user code and providers,
a scripted caller, virtual time, a pytest plugin with a leak check, and seeded randomized
lifecycle scenarios (``voxlane.testing.chaos``, imported on demand).
"""

from voxlane.testing.adversarial import (
    EndlessTTS,
    FailingLLM,
    HangingCloseSTT,
    HangingCloseTTS,
    HangingLLM,
    RaisingCloseSTT,
    RaisingCloseTTS,
    StallingLLM,
    StallingTTS,
    await_behind_shield,
    never_return,
    release_all,
    sleep_long,
    slow_tool,
    swallow_cancellation_forever,
    tool_behind_shield,
    tool_swallowing_cancel,
)
from voxlane.testing.caller import ScriptedCaller
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD
from voxlane.testing.virtual_time import VirtualTimeDeadlock, VirtualTimeLoop, run_virtual

__all__ = [
    "EndlessTTS",
    "FailingLLM",
    "FakeLLM",
    "FakeReply",
    "FakeSTT",
    "FakeTTS",
    "FakeVAD",
    "HangingCloseSTT",
    "HangingCloseTTS",
    "HangingLLM",
    "RaisingCloseSTT",
    "RaisingCloseTTS",
    "ScriptedCaller",
    "StallingLLM",
    "StallingTTS",
    "VirtualTimeDeadlock",
    "VirtualTimeLoop",
    "await_behind_shield",
    "never_return",
    "release_all",
    "run_virtual",
    "sleep_long",
    "slow_tool",
    "swallow_cancellation_forever",
    "tool_behind_shield",
    "tool_swallowing_cancel",
]
