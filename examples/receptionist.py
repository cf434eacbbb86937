"""A dental-clinic receptionist: greets, books appointments, answers opening hours.

Run it with ``voxlane demo`` (scripted caller, local room) or, later, on real calls.
"""

from __future__ import annotations

from voxlane import Agent, RunContext, function_tool

OPENING_HOURS = "Monday to Friday 8:00-18:00, Saturday 9:00-13:00"


class Receptionist(Agent):
    def __init__(self) -> None:
        super().__init__(
            instructions=(
                "You answer calls for Bright Smile Dental. Be brief and friendly. "
                "Use book_appointment to book visits and opening_hours when asked."
            )
        )
        self.bookings: list[tuple[str, str]] = []

    async def on_enter(self) -> None:
        self.session.generate_reply(instructions="Greet the caller and offer help.")

    @function_tool
    async def book_appointment(self, ctx: RunContext, day: str, time: str) -> str:
        """Book a visit at the clinic.

        Args:
            day: the day of the week, e.g. "tuesday"
            time: the time of day, e.g. "10:00"
        """
        self.bookings.append((day, time))
        return f"booked on {day} at {time}"

    @function_tool
    async def opening_hours(self, ctx: RunContext) -> str:
        """The clinic's opening hours."""
        return OPENING_HOURS


def create_agent() -> Agent:
    return Receptionist()
