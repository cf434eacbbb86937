import numpy as np
import pytest

from voxlane.media import AudioFrame, split_frames
from voxlane.resample import FrameChunker, StreamResampler


@pytest.mark.parametrize(
    ("src", "dst"), [(16000, 8000), (8000, 16000), (22050, 16000), (48000, 8000)]
)
def test_resampling_keeps_duration_and_pitch(src: int, dst: int) -> None:
    tone = AudioFrame.tone(1.0, src, freq=440.0)
    rs = StreamResampler(src, dst)
    out = [rs.push(f) for f in split_frames(tone)]
    out.append(rs.push(AudioFrame(b"", src), last=True))
    x = np.concatenate([f.to_numpy() for f in out]).astype(float)
    assert abs(len(x) / dst - 1.0) < 0.01
    spectrum = np.abs(np.fft.rfft(x))
    peak_hz = np.argmax(spectrum) * dst / len(x)
    assert abs(peak_hz - 440.0) < 5


def test_same_rate_is_identity_and_wrong_rate_is_refused() -> None:
    frame = AudioFrame.tone(0.02, 16000)
    assert StreamResampler(16000, 16000).push(frame) is frame
    with pytest.raises(ValueError):
        StreamResampler(8000, 16000).push(frame)


def test_chunker_cuts_exact_frames_and_keeps_the_rest() -> None:
    ch = FrameChunker.of_duration(8000, 0.02)  # 160 samples
    out = ch.push(AudioFrame(bytes(2 * 250), 8000)) + ch.push(AudioFrame(bytes(2 * 100), 8000))
    assert [f.samples for f in out] == [160, 160]
    tail = ch.flush()
    assert tail is not None and tail.samples == 160 and ch.flush() is None
