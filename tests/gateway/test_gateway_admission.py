"""The pure admission decisions: failed-handshake token buckets and connection caps, on
virtual time (``now`` is just a number here)."""

from __future__ import annotations

import pytest

from voxlane.gateway.admission import (
    Admission,
    AdmissionLimits,
    Refusal,
    Refused,
    Ticket,
    TokenBucket,
)

A, B = "192.0.2.1", "192.0.2.2"


def limits(**kw: object) -> AdmissionLimits:
    return AdmissionLimits(**kw)  # type: ignore[arg-type]


def test_token_bucket_spends_refills_and_caps() -> None:
    bucket = TokenBucket(3, 0.5, now=100.0)
    for _ in range(3):
        assert bucket.available(100.0)
        bucket.take(100.0)
    assert not bucket.available(100.0)
    assert bucket.seconds_until_token(100.0) == pytest.approx(2.0)
    assert not bucket.available(101.9)
    assert bucket.available(102.0)
    assert bucket.full(106.0)
    assert bucket.tokens <= 3.0
    bucket.take(1000.0)
    assert bucket.tokens == pytest.approx(2.0)  # refilled to capacity, never above


def test_failed_handshakes_throttle_one_client_not_another() -> None:
    adm = Admission(limits(failed_handshake_burst=3, failed_handshake_rate=1.0))
    now = 1000.0
    for _ in range(3):
        assert adm.throttled(A, now) is None
        adm.failed(A, now)
    refused = adm.throttled(A, now)
    assert refused == Refused(Refusal.THROTTLED, 1, first=True)
    assert refused.refusal.status == 429
    # Further refusals of the same episode are not "first" (logged at DEBUG).
    assert adm.throttled(A, now + 0.5) == Refused(Refusal.THROTTLED, 1, first=False)
    assert adm.throttled(B, now) is None  # another address is unaffected
    # One token back after 1 s: one more handshake is judged; failing it throttles again,
    # in the same episode (not reported again).
    assert adm.throttled(A, now + 1.0) is None
    adm.failed(A, now + 1.0)
    assert adm.throttled(A, now + 1.0) == Refused(Refusal.THROTTLED, 1, first=False)
    # Forgiven once the bucket is full again (3 s later); a new episode is reported.
    assert adm.throttled(A, now + 4.0) is None
    for _ in range(3):
        adm.failed(A, now + 4.0)
    assert adm.throttled(A, now + 4.0) == Refused(Refusal.THROTTLED, 1, first=True)


def test_retry_after_is_the_whole_seconds_until_a_token() -> None:
    adm = Admission(limits(failed_handshake_burst=1, failed_handshake_rate=0.1))
    adm.failed(A, 0.0)
    assert adm.throttled(A, 0.0) == Refused(Refusal.THROTTLED, 10, first=True)
    assert adm.throttled(A, 7.5) == Refused(Refusal.THROTTLED, 3, first=False)
    assert adm.throttled(A, 10.0) is None


def test_a_forgiven_client_is_forgotten_and_the_table_is_bounded() -> None:
    adm = Admission(limits(failed_handshake_burst=2, max_tracked_clients=3))
    for i in range(10):
        adm.failed(f"198.51.100.{i}", 0.0)
    assert adm.statistics().clients_tracked == 3
    adm = Admission(limits(failed_handshake_burst=2, failed_handshake_rate=1.0))
    adm.failed(A, 0.0)
    assert adm.statistics().clients_tracked == 1
    assert adm.throttled(A, 5.0) is None  # full again
    assert adm.statistics().clients_tracked == 0


def test_per_client_cap_then_release_frees_a_place() -> None:
    adm = Admission(limits(max_connections_per_client=2))
    first, second = adm.admit(A, tts=False), adm.admit(A, tts=False)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    assert adm.admit(A, tts=False) == Refused(Refusal.CLIENT_LIMIT, 1, first=True)
    assert adm.admit(A, tts=False) == Refused(Refusal.CLIENT_LIMIT, 1, first=False)
    assert isinstance(adm.admit(B, tts=False), Ticket)
    adm.release(first)
    adm.release(first)  # idempotent
    assert isinstance(adm.admit(A, tts=False), Ticket)
    stats = adm.statistics()
    assert (stats.open_connections, stats.clients_connected, stats.refused) == (3, 2, 2)


@pytest.mark.parametrize(
    ("kw", "tts", "refusal", "status"),
    [
        ({"max_connections": 2}, False, Refusal.SERVER_FULL, 503),
        ({"max_tts_connections": 2}, True, Refusal.TTS_FULL, 503),
    ],
)
def test_server_wide_caps(kw: dict[str, int], tts: bool, refusal: Refusal, status: int) -> None:
    adm = Admission(limits(**kw))
    tickets = [adm.admit(c, tts=tts) for c in (A, B)]
    assert all(isinstance(t, Ticket) for t in tickets)
    refused = adm.admit("192.0.2.3", tts=tts)
    assert refused == Refused(refusal, 1, first=True) and refused.refusal.status == status
    if tts:
        assert isinstance(adm.admit("192.0.2.3", tts=False), Ticket)  # STT is not capped
    ticket = tickets[0]
    assert isinstance(ticket, Ticket)
    adm.release(ticket)
    assert isinstance(adm.admit("192.0.2.3", tts=tts), Ticket)


@pytest.mark.parametrize(
    "kw",
    [
        {"max_connections": 0},
        {"max_connections_per_client": 0},
        {"max_tts_connections": -1},
        {"failed_handshake_burst": 0},
        {"failed_handshake_rate": 0.0},
        {"failed_handshake_rate": float("nan")},
        {"failed_handshake_rate": float("inf")},
    ],
)
def test_limits_out_of_range_name_their_field(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        limits(**kw)
