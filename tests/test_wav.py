"""The one WAV reader (voxlane.wav): every PCM and float layout, any rate and channel count,
converted to PCM16 mono at the rate asked for; everything else refused, by name, in one
line. The WAVs are written here, byte by byte (RIFF chunks), so each layout is exactly the
one under test; Python's ``wave`` writes the 16-bit reference."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from voxlane.wav import WavError, decode_wav, probe_wav, read_wav

SECONDS = 0.5
FREQ = 440.0
LEVEL = 0.5
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
# KSDATAFORMAT_SUBTYPE_{PCM,IEEE_FLOAT}: the tag, then the fixed GUID tail.
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def sine(rate: int, channels: int) -> npt.NDArray[np.float64]:
    """(frames, channels): the tone on channel 0, the same tone at half level on the
    others (so a mixdown is checkable: mean level (1 + 0.5·(n-1)) / n)."""
    t = np.arange(round(SECONDS * rate)) / rate
    x = LEVEL * np.sin(2 * np.pi * FREQ * t)
    cols = [x] + [0.5 * x] * (channels - 1)
    return np.stack(cols, axis=1)


def encode(x: npt.NDArray[np.float64], encoding: str, bits: int) -> bytes:
    if encoding == "float":
        return x.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return np.clip(np.rint(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    full = float(1 << (bits - 1))
    v = np.clip(np.rint(x * full), -full, full - 1).astype(np.int64).ravel()
    if bits == 24:
        u = (v & 0xFFFFFF).astype(np.uint32)
        b = np.stack([u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF], axis=1)
        return b.astype(np.uint8).tobytes()
    return v.astype("<i2" if bits == 16 else "<i4").tobytes()


def riff(chunks: list[tuple[bytes, bytes]], *, riff_size: int | None = None) -> bytes:
    body = b"WAVE"
    for cid, payload in chunks:
        body += cid + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
    return b"RIFF" + struct.pack("<I", riff_size if riff_size is not None else len(body)) + body


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, *, extensible: bool = False) -> bytes:
    align = channels * bits // 8
    base = struct.pack(
        "<HHIIHH", EXTENSIBLE if extensible else tag, channels, rate, rate * align, align, bits
    )
    if not extensible:
        return base
    return base + struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + _GUID_TAIL


def wav_bytes(
    encoding: str, bits: int, rate: int, channels: int, *, extensible: bool = False
) -> bytes:
    tag = FLOAT if encoding == "float" else PCM
    data = encode(sine(rate, channels), encoding, bits)
    return riff(
        [
            (b"fmt ", fmt_chunk(tag, channels, rate, bits, extensible=extensible)),
            (b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00"),  # odd: padded
            (b"data", data),
        ]
    )


def expected_mono(rate: int, channels: int) -> npt.NDArray[np.float64]:
    return sine(rate, channels).mean(axis=1) * 32768


LAYOUTS = [
    ("pcm", 8, 8000, 1, False),
    ("pcm", 16, 16000, 1, False),
    ("pcm", 16, 44100, 2, False),
    ("pcm", 24, 48000, 2, False),
    ("pcm", 24, 96000, 1, True),
    ("pcm", 32, 22050, 1, False),
    ("pcm", 32, 32000, 6, True),
    ("float", 32, 44100, 1, False),
    ("float", 32, 48000, 2, True),
    ("float", 64, 11025, 2, False),
]


@pytest.mark.parametrize(("encoding", "bits", "rate", "channels", "extensible"), LAYOUTS)
def test_every_layout_becomes_pcm16_mono_at_the_asked_rate(
    tmp_path: Path, encoding: str, bits: int, rate: int, channels: int, extensible: bool
) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(encoding, bits, rate, channels, extensible=extensible))
    fmt = probe_wav(path)
    assert (fmt.encoding, fmt.bits, fmt.channels, fmt.sample_rate) == (
        encoding,
        bits,
        channels,
        rate,
    )
    assert fmt.frames == round(SECONDS * rate)

    native = read_wav(path)  # at the file's rate: sample for sample
    assert native.sample_rate == rate and native.samples == fmt.frames
    error = np.abs(native.to_numpy() - expected_mono(rate, channels))
    step = 256 if bits == 8 else 1  # 8-bit: one step of the file is 256 PCM16 steps
    assert error.max() <= step + 1

    frame = read_wav(path, sample_rate=16000)  # converted for the pipeline
    assert frame.sample_rate == 16000
    assert abs(frame.duration - SECONDS) <= 0.002
    got = frame.to_numpy().astype(np.float64)
    want = expected_mono(16000, channels)
    n = min(len(got), len(want))
    inner = slice(200, n - 200)  # the resampler's edges aside
    assert np.sqrt(np.mean((got[inner] - want[inner]) ** 2)) < 0.01 * 32768
    level = LEVEL * (1 + 0.5 * (channels - 1)) / channels * 32768 / np.sqrt(2)
    assert frame.rms() == pytest.approx(level, rel=0.02)


def test_16_bit_mono_passes_through_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ref.wav"
    pcm = np.clip(np.rint(sine(16000, 1)[:, 0] * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:  # the standard library's writer
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    assert read_wav(path).data == pcm.tobytes()
    assert read_wav(path, sample_rate=16000).data == pcm.tobytes()


def test_streamed_wav_with_a_placeholder_data_size_runs_to_the_end(tmp_path: Path) -> None:
    """``espeak-ng --stdout`` and other pipe writers put 0x7ffff000 / 0xffffffff there."""
    pcm = encode(sine(22050, 1), "pcm", 16)
    for placeholder in (0x7FFFF000, 0xFFFFFFFF):
        head = riff([(b"fmt ", fmt_chunk(PCM, 1, 22050, 16))], riff_size=placeholder)
        data = head + b"data" + struct.pack("<I", placeholder) + pcm + b"\x01"  # + half frame
        frame, fmt = decode_wav(data, name="stream")
        assert frame.data == pcm and fmt.frames == len(pcm) // 2


def test_float_samples_out_of_range_are_clipped_and_nan_is_silence() -> None:
    x = np.array([[2.0], [-3.0], [np.nan], [0.5]])
    data = riff([(b"fmt ", fmt_chunk(FLOAT, 1, 8000, 32)), (b"data", encode(x, "float", 32))])
    frame, _ = decode_wav(data)
    assert frame.to_numpy().tolist() == [32767, -32768, 0, 16384]


def _refused(tmp_path: Path, name: str, content: bytes | None) -> str:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WavError) as err:
        read_wav(path, sample_rate=16000)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    with pytest.raises(WavError) as probed:
        probe_wav(path)
    assert str(probed.value) == message  # the CLI's check says the same
    return message.removeprefix(f"{path}: ")


GOOD = wav_bytes("pcm", 16, 8000, 1)
MULAW = riff([(b"fmt ", struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)), (b"data", b"\x7f" * 80)])
REFUSALS = [
    ("missing.wav", None, "no such file"),
    ("empty.wav", b"", "empty file, not a WAV file"),
    ("song.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 64, "not a WAV file (an MP3 file)"),
    ("frames.mp3", b"\xff\xfb\x90\x64" + b"\x00" * 64, "not a WAV file (an MP3 file)"),
    ("voice.ogg", b"OggS\x00\x02" + b"\x00" * 64, "not a WAV file (an Ogg file)"),
    ("notes.txt", b"hello, world\n", "not a WAV file (it does not start with RIFF)"),
    ("clip.avi", b"RIFF\x04\x00\x00\x00AVI LIST", "a RIFF file but not WAVE ('AVI')"),
    ("cut.wav", GOOD[:10], "truncated WAV file (the RIFF header is cut short)"),
    ("cut_fmt.wav", GOOD[:30], "truncated WAV file (the b'fmt ' chunk is cut short)"),
    (
        "no_data.wav",
        riff([(b"fmt ", fmt_chunk(PCM, 1, 8000, 16))]),
        "truncated WAV file (no data chunk)",
    ),
    (
        "cut_data.wav",
        GOOD[:-100],  # 0.5 s at 8 kHz, 16-bit: 8000 bytes of data
        "truncated WAV file (the data chunk says 8000 bytes, the file has 7900)",
    ),
    (
        "ulaw.wav",
        MULAW,
        "mu-law (format 0x0007) is not supported (PCM 8/16/24/32-bit or float 32/64-bit WAV only)",
    ),
    (
        "pcm12.wav",
        riff([(b"fmt ", struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 12)), (b"data", b"\0" * 8)]),
        "12-bit PCM is not supported",
    ),
    (
        "float16.wav",
        riff([(b"fmt ", struct.pack("<HHIIHH", 3, 1, 8000, 16000, 2, 16)), (b"data", b"\0" * 8)]),
        "16-bit float is not supported",
    ),
    (
        "zero_rate.wav",
        riff([(b"fmt ", fmt_chunk(PCM, 1, 0, 16)), (b"data", b"\0" * 8)]),
        "sample rate 0 Hz",
    ),
    (
        "bad_align.wav",
        riff([(b"fmt ", struct.pack("<HHIIHH", 1, 2, 8000, 16000, 2, 16)), (b"data", b"\0" * 8)]),
        "block align 2 does not fit 2 x 16-bit",
    ),
]


@pytest.mark.parametrize(("name", "content", "problem"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_is_not_a_readable_wav_is_refused_by_name(
    tmp_path: Path, name: str, content: bytes | None, problem: str
) -> None:
    assert _refused(tmp_path, name, content).startswith(problem)


def test_a_directory_and_an_oversized_file_are_refused(tmp_path: Path) -> None:
    assert _refused(tmp_path, "", None) == "is a directory, not a WAV file"  # tmp_path itself
    path = tmp_path / "big.wav"
    path.write_bytes(GOOD)
    with pytest.raises(WavError, match=r"big\.wav: \d+ bytes, more than the 100 read"):
        read_wav(path, max_bytes=100)


def test_a_file_longer_than_one_conversion_chunk_converts_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import voxlane.wav

    rate = 8000
    x = sine(rate, 2)
    data = riff([(b"fmt ", fmt_chunk(PCM, 2, rate, 24)), (b"data", encode(x, "pcm", 24))])
    whole, _ = decode_wav(data)
    monkeypatch.setattr(voxlane.wav, "_CHUNK_FRAMES", 333)  # 0.5 s = 4000 frames: 13 chunks
    chunked, _ = decode_wav(data)
    assert chunked.data == whole.data and len(whole.data) == 2 * len(x)
