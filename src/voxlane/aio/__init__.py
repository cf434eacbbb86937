"""A small asyncio toolkit: clock, bounded channels, owned tasks, bounded close, ledger."""

from voxlane.aio.channel import BoundedChannel, ChannelStatistics
from voxlane.aio.clock import DEFAULT_CLOCK, Clock, LoopClock
from voxlane.aio.closing import ResourceStack, StepReport, bounded_aclose, run_step
from voxlane.aio.ledger import LEDGER, ResourceLedger, current_session_id
from voxlane.aio.tasks import (
    AbandonedTask,
    TaskOwner,
    abandon,
    cancel_and_wait,
    join,
    wait_event,
    wait_pending,
)

__all__ = [
    "DEFAULT_CLOCK",
    "LEDGER",
    "AbandonedTask",
    "BoundedChannel",
    "ChannelStatistics",
    "Clock",
    "LoopClock",
    "ResourceLedger",
    "ResourceStack",
    "StepReport",
    "TaskOwner",
    "abandon",
    "bounded_aclose",
    "cancel_and_wait",
    "current_session_id",
    "join",
    "run_step",
    "wait_event",
    "wait_pending",
]
