"""Reading WAV files: every integer and float format, any rate, any number of channels,
converted to what the pipeline speaks (PCM16 mono, at the rate asked for).

The one WAV reader of voxlane (``voxlane console --input``, the speech synthesizers'
output, the tests' recordings). Python's :mod:`wave` reads integer PCM only, and a file it
cannot read ends in ``wave.Error``/``EOFError``; so the RIFF chunks are parsed here, and
every file that is not a WAV we can decode is refused with one :class:`WavError` that
names the file and the problem.

The layout parsed (all little-endian)::

    "RIFF" u32 riff_size "WAVE"  then chunks, each:  id[4] u32 size payload [pad to even]
    "fmt "  u16 format  u16 channels  u32 sample_rate  u32 byte_rate  u16 block_align
            u16 bits_per_sample  [u16 cb_size  u16 valid_bits  u32 channel_mask
            guid[16]: WAVE_FORMAT_EXTENSIBLE, whose first two bytes are the real format]
    "data"  frames of block_align bytes, the channels' samples interleaved

Formats decoded: PCM (1) of 8 (unsigned), 16, 24 or 32 bits, IEEE float (3) of 32 or 64
bits, and either of them inside WAVE_FORMAT_EXTENSIBLE (0xFFFE). Other chunks (LIST,
fact, cue, ...) are skipped; ``riff_size`` is not trusted (writers get it wrong). A data
chunk whose size is the streaming placeholder (0xFFFFFFFF, or ≥ 0x7FFF0000: what a writer
piping to stdout puts there, e.g. ``espeak-ng --stdout``) runs to the end of the file; any
other chunk that claims more bytes than the file has is a truncated file. A partial last
frame is dropped.

Conversion: samples are scaled to [-1, 1] (floats are clipped, NaN is silence), channels
are averaged, the result is rounded to PCM16 (16-bit mono input passes through exactly),
then resampled with :class:`voxlane.resample.StreamResampler` (soxr) if a rate is asked.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voxlane.errors import VoxlaneError
from voxlane.media import AudioFrame
from voxlane.resample import StreamResampler

__all__ = ["MAX_WAV_BYTES", "WavError", "WavFormat", "decode_wav", "probe_wav", "read_wav"]

MAX_WAV_BYTES = 1 << 28
"""The largest file :func:`read_wav` reads into memory (256 MiB: over 2 hours of 16 kHz
PCM16 mono). Decoding needs at most about three times the file's size."""
_CHUNK_FRAMES = 1 << 18  # frames converted at a time: bounds the float64 working set
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_STREAMING_SIZE = 0x7FFF0000  # a data size at least this large is a streaming placeholder

# Format tags people meet, to name them when refusing.
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x00FF: "AAC",
    0x1610: "AAC",
    0xF1AC: "FLAC",
}
# Leading bytes of files that are not WAV at all.
_MAGIC = (
    (b"ID3", "an MP3 file"),
    (b"\xff\xfb", "an MP3 file"),
    (b"\xff\xf3", "an MP3 file"),
    (b"\xff\xf2", "an MP3 file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC file"),
    (b"RIFX", "a big-endian RIFF (RIFX) file, not supported"),
    (b"RF64", "an RF64 (64-bit WAV) file, not supported"),
    (b"FORM", "an AIFF file"),
)
_SUPPORTED = "PCM 8/16/24/32-bit or float 32/64-bit WAV"


class WavError(VoxlaneError):
    """The file is not a WAV file this reader decodes. The message is one line: the file,
    then the problem (``"call.mp3: not a WAV file (an MP3 file)"``)."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What the ``fmt `` chunk says, and how many whole frames the data chunk holds."""

    encoding: str  # "pcm" (integer) or "float"
    bits: int  # bits per sample of the container (8, 16, 24, 32, 64)
    channels: int
    sample_rate: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def describe(self) -> str:
        kind = "float" if self.encoding == "float" else "PCM"
        return f"{kind} {self.bits}-bit, {self.channels} ch, {self.sample_rate} Hz"


def _parse(data: bytes, name: str) -> tuple[WavFormat, memoryview]:
    """The format and the whole frames of a WAV file's bytes. Raises :class:`WavError`."""

    def fail(problem: str) -> WavError:
        return WavError(f"{name}: {problem}")

    if not data:
        raise fail("empty file, not a WAV file")
    if data[:4] != b"RIFF":
        for magic, what in _MAGIC:
            if data.startswith(magic):
                raise fail(f"not a WAV file ({what})")
        raise fail("not a WAV file (it does not start with RIFF)")
    if len(data) < 12:
        raise fail("truncated WAV file (the RIFF header is cut short)")
    if data[8:12] != b"WAVE":
        form = data[8:12].decode("latin-1").strip()
        raise fail(f"a RIFF file but not WAVE ({form!r})")
    view = memoryview(data)
    fmt: bytes | None = None
    payload: memoryview | None = None
    pos = 12
    while pos + 8 <= len(data) and (fmt is None or payload is None):
        chunk_id = bytes(view[pos : pos + 4])
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"data":
            if body + size > len(data):
                if size < _STREAMING_SIZE:
                    raise fail(
                        f"truncated WAV file (the data chunk says {size} bytes, "
                        f"the file has {len(data) - body})"
                    )
                size = len(data) - body
            payload = view[body : body + size]
        elif body + size > len(data):
            raise fail(f"truncated WAV file (the {chunk_id!r} chunk is cut short)")
        elif chunk_id == b"fmt ":
            fmt = bytes(view[body : body + size])
        pos = body + size + (size & 1)
    if fmt is None:
        raise fail("truncated WAV file (no fmt chunk)" if payload is None else "no fmt chunk")
    if payload is None:
        raise fail("truncated WAV file (no data chunk)")
    wav_format = _format(fmt, len(payload), fail)
    usable = wav_format.frames * wav_format.channels * (wav_format.bits // 8)
    return wav_format, payload[:usable]


def _format(fmt: bytes, data_size: int, fail: Callable[[str], WavError]) -> WavFormat:
    """The ``fmt `` chunk's format; ``fail(problem)`` makes the error to raise."""
    if len(fmt) < 16:
        raise fail("truncated fmt chunk")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40:
            raise fail("truncated fmt chunk (WAVE_FORMAT_EXTENSIBLE needs 40 bytes)")
        (tag,) = struct.unpack_from("<H", fmt, 24)  # the subformat GUID's first two bytes
    if tag == WAVE_FORMAT_PCM and bits in (8, 16, 24, 32):
        encoding = "pcm"
    elif tag == WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        encoding = "float"
    elif tag in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        kind = "PCM" if tag == WAVE_FORMAT_PCM else "float"
        raise fail(f"{bits}-bit {kind} is not supported ({_SUPPORTED} only)")
    else:
        what = _FORMAT_NAMES.get(tag, "unknown format")
        raise fail(f"{what} (format 0x{tag:04x}) is not supported ({_SUPPORTED} only)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise fail(f"{channels} channels (1 to {MAX_CHANNELS} are read)")
    if not 1 <= rate <= MAX_SAMPLE_RATE:
        raise fail(f"sample rate {rate} Hz (1 to {MAX_SAMPLE_RATE} are read)")
    if block_align != channels * bits // 8:
        raise fail(f"block align {block_align} does not fit {channels} x {bits}-bit samples")
    return WavFormat(encoding, bits, channels, rate, data_size // block_align)


def _samples(fmt: WavFormat, payload: memoryview) -> npt.NDArray[np.float64]:
    """(frames, channels) samples scaled to [-1, 1]."""
    raw = bytes(payload)
    x: npt.NDArray[np.float64]
    if fmt.encoding == "float":
        x = np.frombuffer(raw, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float64)
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    elif fmt.bits == 8:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif fmt.bits == 16:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif fmt.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    else:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    return x.reshape(-1, fmt.channels)


def _pcm16_mono(fmt: WavFormat, payload: memoryview) -> bytes:
    """The frames as PCM16 mono, converted a chunk at a time (the float working set stays
    small however long the file)."""
    step = _CHUNK_FRAMES * fmt.channels * (fmt.bits // 8)
    out = bytearray()
    for start in range(0, len(payload), step):
        mono = _samples(fmt, payload[start : start + step]).mean(axis=1)
        out += np.clip(np.rint(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return bytes(out)


def decode_wav(
    data: bytes, *, name: str = "<wav>", sample_rate: int | None = None
) -> tuple[AudioFrame, WavFormat]:
    """A WAV file's bytes as one PCM16 mono frame (at ``sample_rate`` if given, else at the
    file's rate) and the file's format. ``name`` labels errors. Raises :class:`WavError`."""
    fmt, payload = _parse(data, name)
    if fmt.encoding == "pcm" and fmt.bits == 16 and fmt.channels == 1:
        frame = AudioFrame(bytes(payload), fmt.sample_rate)  # exact: nothing to convert
    else:
        frame = AudioFrame(_pcm16_mono(fmt, payload), fmt.sample_rate)
    if sample_rate is not None and sample_rate != fmt.sample_rate:
        frame = StreamResampler(fmt.sample_rate, sample_rate).push(frame, last=True)
    return frame, fmt


def _read(path: Path, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise WavError(f"{path}: {size} bytes, more than the {limit} read")
        with path.open("rb") as f:
            return f.read(limit + 1)
    except IsADirectoryError:
        raise WavError(f"{path}: is a directory, not a WAV file") from None
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except PermissionError:
        raise WavError(f"{path}: permission denied") from None
    except OSError as exc:
        raise WavError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


def read_wav(
    path: Path | str, *, sample_rate: int | None = None, max_bytes: int = MAX_WAV_BYTES
) -> AudioFrame:
    """The WAV file at ``path`` as one PCM16 mono frame, resampled to ``sample_rate`` if
    given. Raises :class:`WavError` (one line naming the file) for a file that is missing,
    unreadable, larger than ``max_bytes``, empty, truncated, not a WAV file, or in a format
    this module does not decode."""
    path = Path(path)
    frame, _ = decode_wav(_read(path, max_bytes), name=str(path), sample_rate=sample_rate)
    return frame


def probe_wav(path: Path | str, *, max_bytes: int = MAX_WAV_BYTES) -> WavFormat:
    """Check that ``path`` is a WAV file :func:`read_wav` decodes, without decoding it.
    Raises :class:`WavError` as :func:`read_wav` does."""
    path = Path(path)
    fmt, _ = _parse(_read(path, max_bytes), str(path))
    return fmt
