"""G.711 μ-law (PCMU, payload type 0) and A-law (PCMA, 8) codecs, table-based with numpy.

Contracts: PCM is signed 16-bit little-endian mono at 8 kHz, given as a numpy ``int16``
array or raw bytes; G.711 is one byte per sample. Encoding never fails on well-typed
input (odd byte counts raise ``ValueError``); decoding accepts any bytes.

The quantization is the classic Sun/ITU reference (the one CPython's removed ``audioop``
used), so outputs are bit-exact with other implementations in the wild. Tables are built
once at import: 65,536 entries per encoder, 256 per decoder; a frame is then one numpy
fancy-index, cheap enough for every 20 ms frame of every call.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PAYLOAD_TYPE_PCMA",
    "PAYLOAD_TYPE_PCMU",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "ulaw_decode",
    "ulaw_encode",
]

PAYLOAD_TYPE_PCMU: Final = 0
PAYLOAD_TYPE_PCMA: Final = 8

Pcm16 = npt.NDArray[np.int16]

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    # Index = sample as uint16 (two's complement view), so int16 arrays index directly.
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 2  # 14-bit, arithmetic shift
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 33  # clip, then add the bias (0x84 >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    uval = (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    out = np.where(seg >= 8, 0x7F ^ mask, uval ^ mask)
    return out.astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 3  # 13-bit, arithmetic shift
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    aval = (seg << 4) | ((mag >> shift) & 0x0F)
    out = np.where(seg >= 8, 0x7F ^ mask, aval ^ mask)
    return out.astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    high = (t + 0x108) << np.maximum(seg - 1, 0)
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, high))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC: Final = _build_ulaw_encode()
_ULAW_DEC: Final = _build_ulaw_decode()
_ALAW_ENC: Final = _build_alaw_encode()
_ALAW_DEC: Final = _build_alaw_decode()


def _as_pcm16(pcm: Pcm16 | bytes | bytearray | memoryview) -> Pcm16:
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise ValueError(f"PCM array must be int16, got {pcm.dtype}")
        return pcm.reshape(-1)
    data = bytes(pcm)
    if len(data) % 2:
        raise ValueError("PCM16 bytes must have an even length")
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


def _as_u8(data: bytes | bytearray | memoryview) -> npt.NDArray[np.uint8]:
    return np.frombuffer(bytes(data), dtype=np.uint8)


def ulaw_encode(pcm: Pcm16 | bytes | bytearray | memoryview) -> bytes:
    """PCM16 samples → μ-law bytes (one per sample)."""
    return _ULAW_ENC[_as_pcm16(pcm).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview) -> Pcm16:
    """μ-law bytes → PCM16 samples (a new int16 array, one sample per byte)."""
    return _ULAW_DEC[_as_u8(data)]


def alaw_encode(pcm: Pcm16 | bytes | bytearray | memoryview) -> bytes:
    """PCM16 samples → A-law bytes (one per sample)."""
    return _ALAW_ENC[_as_pcm16(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> Pcm16:
    """A-law bytes → PCM16 samples (a new int16 array, one sample per byte)."""
    return _ALAW_DEC[_as_u8(data)]


def encode(payload_type: int, pcm: Pcm16 | bytes | bytearray | memoryview) -> bytes:
    """Encode for RTP payload type 0 (PCMU) or 8 (PCMA); others raise ``ValueError``."""
    if payload_type == PAYLOAD_TYPE_PCMU:
        return ulaw_encode(pcm)
    if payload_type == PAYLOAD_TYPE_PCMA:
        return alaw_encode(pcm)
    raise ValueError(f"not a G.711 payload type: {payload_type}")


def decode(payload_type: int, data: bytes | bytearray | memoryview) -> Pcm16:
    """Decode an RTP payload of type 0 (PCMU) or 8 (PCMA); others raise ``ValueError``."""
    if payload_type == PAYLOAD_TYPE_PCMU:
        return ulaw_decode(data)
    if payload_type == PAYLOAD_TYPE_PCMA:
        return alaw_decode(data)
    raise ValueError(f"not a G.711 payload type: {payload_type}")
