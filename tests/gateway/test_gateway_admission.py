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


def ticket(adm: Admission, client: str) -> Ticket:
    got = adm.connect(client)
    assert isinstance(got, Ticket), got
    return got


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
    first, _second = ticket(adm, A), ticket(adm, A)
    assert adm.connect(A) == Refused(Refusal.CLIENT_LIMIT, 1, first=True)
    assert adm.connect(A) == Refused(Refusal.CLIENT_LIMIT, 1, first=False)
    assert Refusal.CLIENT_LIMIT.status is None  # closed at accept: no HTTP answer
    ticket(adm, B)
    adm.release(first)
    adm.release(first)  # idempotent
    ticket(adm, A)
    stats = adm.statistics()
    assert (stats.open_connections, stats.clients_connected) == (3, 2)
    assert (stats.refused, stats.refused_at_connect) == (2, 2)


def test_a_flood_at_the_cap_is_one_episode_until_the_client_is_gone() -> None:
    """Places freed and retaken under a flood do not start a new episode (one WARNING per
    freed place would let a flood fill the log); the client's last close ends it."""
    adm = Admission(limits(max_connections_per_client=2))
    held = [ticket(adm, A), ticket(adm, A)]
    assert adm.connect(A) == Refused(Refusal.CLIENT_LIMIT, 1, first=True)
    for _ in range(5):
        adm.release(held.pop(0))
        held.append(ticket(adm, A))
        assert adm.connect(A) == Refused(Refusal.CLIENT_LIMIT, 1, first=False)
    for t in held:
        adm.release(t)
    held = [ticket(adm, A), ticket(adm, A)]
    assert adm.connect(A) == Refused(Refusal.CLIENT_LIMIT, 1, first=True)


def test_server_wide_cap_counts_every_client_and_ends_its_episode_at_half() -> None:
    adm = Admission(limits(max_connections=4))
    tickets = [ticket(adm, f"192.0.2.{i}") for i in range(4)]
    assert adm.connect("192.0.2.9") == Refused(Refusal.SERVER_FULL, 1, first=True)
    assert Refusal.SERVER_FULL.status is None
    adm.release(tickets[0])
    ticket(adm, "192.0.2.9")
    assert adm.connect("192.0.2.9") == Refused(Refusal.SERVER_FULL, 1, first=False)
    for t in tickets[1:3]:
        adm.release(t)
    assert adm.statistics().open_connections == 2  # half the cap: the episode is over
    ticket(adm, "192.0.2.9")
    ticket(adm, "192.0.2.9")
    assert adm.connect("192.0.2.9") == Refused(Refusal.SERVER_FULL, 1, first=True)


def test_tts_places_are_taken_at_the_handshake_and_given_back_with_the_connection() -> None:
    adm = Admission(limits(max_tts_connections=2))
    first, second, third = ticket(adm, A), ticket(adm, B), ticket(adm, A)
    assert adm.admit_tts(first) is None and adm.admit_tts(second) is None
    assert adm.admit_tts(first) is None  # idempotent: one place per connection
    assert adm.admit_tts(third) == Refused(Refusal.TTS_FULL, 1, first=True)
    assert Refusal.TTS_FULL.status == 503
    assert adm.statistics().open_tts_connections == 2
    adm.release(first)
    assert adm.statistics().open_tts_connections == 1
    assert adm.admit_tts(third) is None
    assert (adm.statistics().refused, adm.statistics().refused_at_connect) == (1, 0)


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
