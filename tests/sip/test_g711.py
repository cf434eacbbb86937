"""G.711 codec tests: known values, round trips, and bit-exactness with audioop."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from voxlane.transports.sip import g711

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7E, 0x55),
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
        (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A),
    ],
)
def test_known_encodings(sample: int, ulaw: int, alaw: int) -> None:
    pcm = np.array([sample], dtype=np.int16)
    assert g711.ulaw_encode(pcm) == bytes([ulaw])
    assert g711.alaw_encode(pcm) == bytes([alaw])


def test_known_decodings() -> None:
    assert g711.ulaw_decode(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert g711.alaw_decode(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("pt", [g711.PAYLOAD_TYPE_PCMU, g711.PAYLOAD_TYPE_PCMA])
def test_decode_encode_is_identity_on_codewords(pt: int) -> None:
    codes = bytes(range(256))
    again = g711.encode(pt, g711.decode(pt, codes))
    if pt == g711.PAYLOAD_TYPE_PCMU:
        # 0x7F and 0xFF both decode to 0 ("negative zero"); 0 encodes to 0xFF.
        assert again == codes.replace(b"\x7f", b"\xff")
    else:
        assert again == codes


@pytest.mark.parametrize("pt", [g711.PAYLOAD_TYPE_PCMU, g711.PAYLOAD_TYPE_PCMA])
def test_round_trip_error_is_bounded(pt: int) -> None:
    decoded = g711.decode(pt, g711.encode(pt, ALL_SAMPLES)).astype(np.int32)
    error = np.abs(decoded - ALL_SAMPLES.astype(np.int32))
    # Logarithmic quantizer: the error grows with magnitude, at most ~1/16 of it (+ floor).
    assert np.all(error <= np.abs(ALL_SAMPLES.astype(np.int32)) // 16 + 1100)
    assert error[np.abs(ALL_SAMPLES.astype(np.int32)) < 64].max() <= 8


def test_bytes_and_array_inputs_agree() -> None:
    pcm = (np.sin(np.arange(160) / 5) * 12000).astype(np.int16)
    assert g711.ulaw_encode(pcm) == g711.ulaw_encode(pcm.astype("<i2").tobytes())
    assert len(g711.alaw_encode(pcm)) == 160
    with pytest.raises(ValueError):
        g711.ulaw_encode(b"\x00")
    with pytest.raises(ValueError):
        g711.encode(9, pcm)


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop was removed in 3.13")
def test_bit_exact_with_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # only as a reference oracle; the library never uses it

    raw = ALL_SAMPLES.astype("<i2").tobytes()
    assert g711.ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(raw, 2)
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).astype("<i2").tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).astype("<i2").tobytes() == audioop.alaw2lin(codes, 2)
