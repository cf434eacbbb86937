"""Seeded mutation fuzzing: the shared engine behind the SIP and websocket campaigns.

A campaign takes a corpus of valid inputs (datagrams, frames) and a seed, and derives case
``i`` from ``(seed, i)`` alone, so any failure is replayed by its index without re-running
the cases before it (``fuzz_cases(corpus, seed, count)`` and ``case(corpus, seed, index)``
agree). The mutations are byte-level (flips, inserts, deletions, duplicated and truncated
spans, splices of two corpus items, boundary bytes) and text-level for line-oriented
protocols (swapped, duplicated and dropped lines, numbers replaced by boundary values).
Protocol-aware mutations live next to the protocol's campaign; this module knows none.

The random source is :class:`random.Random`: deterministic for a seed across platforms and
Python versions that keep its algorithm (every supported CPython does), which is what a
reproducible campaign needs; it is not, and need not be, cryptographic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FuzzCase", "FuzzFailure", "FuzzReport", "Mutator", "case", "fuzz_cases"]

#: Byte strings that tend to find edge cases in parsers.
BOUNDARY_BYTES: tuple[bytes, ...] = (
    b"\x00",
    b"\xff",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"%s%n",
    b"\xc3\x28",  # invalid UTF-8
    b"\xef\xbb\xbf",  # BOM
    "é☃".encode(),
    b" " * 64,
    b"A" * 4096,
)

#: Numbers that tend to break length fields, ports, counters and sizes.
BOUNDARY_NUMBERS: tuple[str, ...] = (
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967296",
    "99999999999999999999",
    "-0",
    "1e9",
    "0x10",
    "NaN",
    "",
)

_NUMBER = re.compile(rb"\d+")


@dataclass(frozen=True)
class FuzzCase:
    """One input of a campaign; ``data`` is a pure function of (seed, index)."""

    index: int
    data: bytes


@dataclass(frozen=True)
class FuzzFailure:
    """A broken invariant: which case, its input and what went wrong (one line)."""

    index: int
    data: bytes
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error, "data": self.data[:512].hex()}


@dataclass
class FuzzReport:
    """The outcome of a campaign over ``cases`` inputs of ``target``."""

    target: str
    seed: int
    cases: int = 0
    failures: list[FuzzFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "seed": self.seed,
            "cases": self.cases,
            "failures": [f.as_dict() for f in self.failures],
            "seconds": round(self.seconds, 3),
        }


class Mutator:
    """Applies one to four random mutations to an input; deterministic for its seed.

    ``corpus`` (optional) is used by the splice mutation, which joins the head of the input
    to the tail of another corpus item.
    """

    def __init__(self, seed: int, corpus: Sequence[bytes] = ()) -> None:
        self.rng = random.Random(seed)
        self.corpus = list(corpus)
        self._ops: list[Callable[[bytes], bytes]] = [
            self._flip_bit,
            self._set_byte,
            self._insert_boundary,
            self._delete_span,
            self._duplicate_span,
            self._truncate,
            self._splice,
            self._swap_lines,
            self._duplicate_line,
            self._drop_line,
            self._replace_number,
        ]

    def mutate(self, data: bytes) -> bytes:
        for _ in range(self.rng.randint(1, 4)):
            data = self.rng.choice(self._ops)(data)
        return data

    def garbage(self, max_len: int = 512) -> bytes:
        """Random bytes, sometimes empty."""
        return self.rng.randbytes(self.rng.randint(0, max_len))

    # -- byte level ------------------------------------------------------------------

    def _pos(self, data: bytes) -> int:
        return self.rng.randint(0, len(data))

    def _flip_bit(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self.rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << self.rng.randrange(8))]) + data[i + 1 :]

    def _set_byte(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self.rng.randrange(len(data))
        return data[:i] + bytes([self.rng.randrange(256)]) + data[i + 1 :]

    def _insert_boundary(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + self.rng.choice(BOUNDARY_BYTES) + data[i:]

    def _span(self, data: bytes) -> tuple[int, int]:
        a = self._pos(data)
        return a, min(len(data), a + self.rng.randint(1, 64))

    def _delete_span(self, data: bytes) -> bytes:
        a, b = self._span(data)
        return data[:a] + data[b:]

    def _duplicate_span(self, data: bytes) -> bytes:
        a, b = self._span(data)
        return data[:b] + data[a:b] * self.rng.randint(1, 8) + data[b:]

    def _truncate(self, data: bytes) -> bytes:
        return data[: self._pos(data)]

    def _splice(self, data: bytes) -> bytes:
        if not self.corpus:
            return self._truncate(data)
        other = self.rng.choice(self.corpus)
        return data[: self._pos(data)] + other[self.rng.randint(0, len(other)) :]

    # -- text level (line-oriented protocols) ------------------------------------------

    def _lines(self, data: bytes) -> list[bytes]:
        return data.split(b"\n")

    def _swap_lines(self, data: bytes) -> bytes:
        lines = self._lines(data)
        if len(lines) < 2:
            return data
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)

    def _duplicate_line(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self.rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return b"\n".join(lines)

    def _drop_line(self, data: bytes) -> bytes:
        lines = self._lines(data)
        del lines[self.rng.randrange(len(lines))]
        return b"\n".join(lines)

    def _replace_number(self, data: bytes) -> bytes:
        numbers = list(_NUMBER.finditer(data))
        if not numbers:
            return self._insert_boundary(data)
        m = self.rng.choice(numbers)
        value = self.rng.choice(BOUNDARY_NUMBERS).encode()
        return data[: m.start()] + value + data[m.end() :]


def case(corpus: Sequence[bytes], seed: int, index: int) -> FuzzCase:
    """Case ``index`` of the campaign ``(corpus, seed)``: a mutated corpus item, or (one
    case in sixteen) plain garbage."""
    if not corpus:
        raise ValueError("fuzzing needs a non-empty corpus")
    mutator = Mutator(seed * 1_000_003 + index, corpus)
    if mutator.rng.randrange(16) == 0:
        return FuzzCase(index, mutator.garbage())
    return FuzzCase(index, mutator.mutate(mutator.rng.choice(corpus)))


def fuzz_cases(corpus: Sequence[bytes], seed: int, count: int) -> Iterator[FuzzCase]:
    """Cases ``0 .. count-1`` of the campaign ``(corpus, seed)``."""
    for index in range(count):
        yield case(corpus, seed, index)
