"""The pure speech segmenter: probabilities per window in, START/END edges out (table tests)."""

from __future__ import annotations

import pytest

from voxlane.core.speech_segmenter import (
    SegmenterConfig,
    SegmenterState,
    SegmentEvent,
    SpeechEdge,
    SpeechSegmenter,
)

W = 0.032  # one Silero window


def run(probs: list[float], **config: float) -> list[SegmentEvent]:
    seg = SpeechSegmenter(SegmenterConfig(**config))  # type: ignore[arg-type]
    events = []
    for i, p in enumerate(probs):
        ev = seg.push(p, i * W, (i + 1) * W)
        if ev is not None:
            events.append(ev)
    end = seg.finish(len(probs) * W)
    if end is not None:
        events.append(end)
    return events


def edges(events: list[SegmentEvent]) -> list[tuple[str, float]]:
    return [(e.edge.value, round(e.timestamp_s, 3)) for e in events]


CFG = {"min_speech_s": 0.096, "min_silence_s": 0.096, "speech_pad_s": 0.0}


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        # silence only
        ([0.1] * 20, []),
        # 3 windows of speech reach min_speech: START at the onset, not at the decision
        ([0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [("start", 0.032), ("end", 0.224)]),
        # 2 windows are too short for min_speech
        ([0.1, 0.9, 0.9, 0.1, 0.1, 0.1], []),
        # between neg (0.35) and threshold: keeps a candidate alive but does not start one
        ([0.4, 0.9, 0.4, 0.4, 0.1, 0.1, 0.1], [("start", 0.032)]),
        ([0.4, 0.4, 0.4, 0.4, 0.4], []),
        # a dip below neg abandons the candidate
        ([0.9, 0.9, 0.2, 0.9, 0.9, 0.2], []),
        # while speaking, short dips below neg do not end speech; hysteresis band does not
        # reset the silence run, a window >= threshold does
        (
            [0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.2, 0.4, 0.2, 0.6],
            [("start", 0.0), ("end", 0.288)],
        ),
        # speech still in progress at the end of the input: END at the input's end
        ([0.9] * 5, [("start", 0.0), ("end", 0.16)]),
    ],
)
def test_segmenter_table(probs: list[float], expected: list[tuple[str, float]]) -> None:
    got = edges(run(probs, **CFG))
    assert got[: len(expected)] == expected
    if expected and expected[-1][0] == "start":
        assert len(got) == len(expected) + 1 and got[-1][0] == "end"  # closed by finish()
    else:
        assert got == expected


def test_speech_pad_moves_start_earlier_but_not_below_zero() -> None:
    probs = [0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9]
    got = edges(run(probs, min_speech_s=0.096, min_silence_s=0.096, speech_pad_s=0.1))
    assert got == [("start", 0.0), ("end", 0.256), ("start", 0.156), ("end", 0.352)]


def test_min_speech_zero_starts_on_the_first_speech_window() -> None:
    assert edges(run([0.1, 0.6], min_speech_s=0.0, speech_pad_s=0.0))[0] == ("start", 0.032)


def test_state_and_finish_reset() -> None:
    seg = SpeechSegmenter(SegmenterConfig(min_speech_s=0.0))
    assert seg.push(0.9, 0.0, W) is not None
    assert seg.state is SegmenterState.SPEAKING
    assert seg.finish(1.0) == SegmentEvent(SpeechEdge.END, 1.0)
    assert seg.state is SegmenterState.SILENT and seg.finish(2.0) is None


def test_neg_threshold_default_and_validation() -> None:
    assert SegmenterConfig(threshold=0.5).effective_neg_threshold == pytest.approx(0.35)
    assert SegmenterConfig(threshold=0.1).effective_neg_threshold == pytest.approx(0.01)
    with pytest.raises(ValueError):
        SegmenterConfig(threshold=1.5)
    with pytest.raises(ValueError):
        SegmenterConfig(threshold=0.5, neg_threshold=0.6)
    with pytest.raises(ValueError):
        SegmenterConfig(min_silence_s=-1)
