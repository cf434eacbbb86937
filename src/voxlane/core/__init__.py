"""Pure decisions: lifecycles, scheduling, close deadlines, retry policy, turn tracking.

Nothing in this package imports asyncio or reads a clock; ``now`` is always passed in.
"""
