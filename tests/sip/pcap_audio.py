"""Write a G.711 RTP pcap from a PCM16 WAV, for sipp's ``play_pcap_audio``. Pure Python.

sipp replays the UDP payloads of an Ethernet/IPv4/UDP capture at the capture's own
timing, rewriting addresses to the call's media address. So we write a classic
libpcap file (DLT_EN10MB), one packet per 20 ms frame, RTP v2 with PCMU or PCMA.

Usage (speech comes from espeak-ng when installed; a tone otherwise)::

    python -m tests.sip.pcap_audio out.pcap --text "hello, I would like a table"
    python -m tests.sip.pcap_audio out.pcap --wav speech.wav --pcma

Generated files are test artefacts: never commit them.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voxlane.transports.sip import g711
from voxlane.transports.sip.rtp import RtpSender

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz

_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_LINKTYPE_ETHERNET = 1


def read_wav_pcm16(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    """Mono PCM16 samples and sample rate of a WAV file (stereo is averaged)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data.astype(np.int16), rate


def resample(
    pcm: npt.NDArray[np.int16], from_rate: int, to_rate: int = SAMPLE_RATE
) -> npt.NDArray[np.int16]:
    """Resample with a windowed-sinc low-pass then linear interpolation (test quality)."""
    if from_rate == to_rate:
        return pcm.copy()
    x = pcm.astype(np.float64)
    if to_rate < from_rate:  # anti-alias below the new Nyquist frequency
        cutoff = 0.45 * to_rate / from_rate
        taps = np.arange(-32, 33)
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
        x = np.convolve(x, kernel / kernel.sum(), mode="same")
    n_out = int(len(x) * to_rate / from_rate)
    y = np.interp(np.arange(n_out) * from_rate / to_rate, np.arange(len(x)), x)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def synthesize(text: str) -> npt.NDArray[np.int16] | None:
    """Speech for ``text`` at 8 kHz via espeak-ng, or None when it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(
            [exe, "-w", str(wav_path), text], check=True, timeout=60, capture_output=True
        )
        pcm, rate = read_wav_pcm16(wav_path)
    return resample(pcm, rate)


def rtp_payloads(
    pcm8k: npt.NDArray[np.int16],
    payload_type: int = g711.PAYLOAD_TYPE_PCMU,
    *,
    ssrc: int = 0x5EED,
    initial_sequence: int = 1000,
) -> list[bytes]:
    """Serialized RTP packets, one per 20 ms frame (the last frame padded with silence)."""
    pad = (-len(pcm8k)) % FRAME_SAMPLES
    samples = np.concatenate([pcm8k, np.zeros(pad, dtype=np.int16)])
    sender = RtpSender(ssrc=ssrc, payload_type=payload_type, initial_sequence=initial_sequence)
    return [
        sender.next_packet(g711.encode(payload_type, frame)).to_bytes()
        for frame in samples.reshape(-1, FRAME_SAMPLES)
    ]


def _ipv4_checksum(header: bytes) -> int:
    total = int(sum(struct.unpack(f"!{len(header) // 2}H", header)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int], ident: int) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload  # no checksum
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            ident & 0xFFFF,
            0,
            64,
            17,
            0,
            bytes(map(int, src[0].split("."))),
            bytes(map(int, dst[0].split("."))),
        )
    )
    ip[10:12] = struct.pack("!H", _ipv4_checksum(bytes(ip)))
    ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + bytes(ip) + udp


def write_pcap(
    path: Path,
    payloads: Iterable[bytes],
    *,
    ptime_s: float = 0.02,
    src: tuple[str, int] = ("127.0.0.1", 6000),
    dst: tuple[str, int] = ("127.0.0.1", 6002),
) -> int:
    """Write UDP ``payloads`` as an Ethernet pcap, ``ptime_s`` apart. Returns the count."""
    count = 0
    with open(path, "wb") as out:
        out.write(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
        for i, payload in enumerate(payloads):
            frame = _frame(payload, src, dst, i)
            usec = round(i * ptime_s * 1_000_000)
            out.write(
                _PCAP_RECORD.pack(usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
            )
            out.write(frame)
            count += 1
    return count


def write_audio_pcap(
    path: Path, pcm8k: npt.NDArray[np.int16], payload_type: int = g711.PAYLOAD_TYPE_PCMU
) -> float:
    """Write ``pcm8k`` as a G.711 RTP pcap; returns its duration in seconds."""
    n = write_pcap(path, rtp_payloads(pcm8k, payload_type))
    return n * FRAME_SAMPLES / SAMPLE_RATE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("out", type=Path)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wav", type=Path, help="PCM16 WAV to encode")
    source.add_argument("--text", default="Hello. I would like to book a table for two.")
    parser.add_argument("--pcma", action="store_true", help="A-law (PT 8) instead of PCMU")
    args = parser.parse_args(argv)
    if args.wav is not None:
        pcm, rate = read_wav_pcm16(args.wav)
        pcm8k = resample(pcm, rate)
    else:
        speech = synthesize(args.text)
        pcm8k = speech if speech is not None else tone(3.0)
    pt = g711.PAYLOAD_TYPE_PCMA if args.pcma else g711.PAYLOAD_TYPE_PCMU
    seconds = write_audio_pcap(args.out, pcm8k, pt)
    print(f"{args.out}: {seconds:.2f} s of {'PCMA' if args.pcma else 'PCMU'}")


if __name__ == "__main__":
    main()
