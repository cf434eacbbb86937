import pytest

from voxlane.core.retry import Backoff, Failure, FailureKind, RetryAction, RetryBudget, classify

K, A = FailureKind, RetryAction

CLASSIFY = [
    (Failure(K.REFUSED), True, A.RETRY),
    (Failure(K.RESET), True, A.RETRY),
    (Failure(K.TIMEOUT), True, A.RETRY),
    (Failure(K.SERVER_BUSY, code=2008), True, A.RETRY),
    (Failure(K.IDLE_CLOSED, code=2007), True, A.IDLE),
    (Failure(K.AUTH), True, A.FATAL),
    (Failure(K.BAD_SETTINGS), True, A.FATAL),
    (Failure(K.PROTOCOL, retryable=True), True, A.RETRY),
    (Failure(K.PROTOCOL, retryable=False), True, A.FATAL),
    (Failure(K.OTHER, retryable=False), True, A.FATAL),
    # Once input ended or the session is closing, nothing reconnects (I5).
    (Failure(K.IDLE_CLOSED, code=2007), False, A.STOP),
    (Failure(K.RESET), False, A.STOP),
    (Failure(K.AUTH), False, A.STOP),
]


@pytest.mark.parametrize(("failure", "live", "action"), CLASSIFY)
def test_classify(failure: Failure, live: bool, action: RetryAction) -> None:
    assert classify(failure, live=live) is action


def test_backoff_grows_caps_and_jitters_within_bounds() -> None:
    b = Backoff(initial=0.1, multiplier=2.0, cap=1.0, jitter=0.2)
    assert b.delay(1, 0.5) == pytest.approx(0.1)
    assert b.delay(2, 0.5) == pytest.approx(0.2)
    assert b.delay(10, 0.5) == pytest.approx(1.0)
    for attempt in range(1, 12):
        for r in (0.0, 0.3, 0.999):
            d = b.delay(attempt, r)
            base = min(1.0, 0.1 * 2 ** (attempt - 1))
            assert 0.8 * base - 1e-9 <= d <= min(1.0, 1.2 * base) + 1e-9
    with pytest.raises(ValueError):
        b.delay(0, 0.5)


def test_budget_exhausts_then_refills_on_progress() -> None:
    budget = RetryBudget(max_attempts=3)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    budget.on_progress()
    assert budget.remaining == 3 and budget.try_spend()


def test_budget_refills_after_a_healthy_connection() -> None:
    budget = RetryBudget(max_attempts=2, healthy_after=5.0)
    budget.try_spend()
    budget.try_spend()
    budget.on_connected(100.0)
    budget.on_disconnected(103.0)  # only 3 s: no refill
    assert budget.remaining == 0
    budget.on_connected(200.0)
    budget.check_healthy(204.0)
    assert budget.remaining == 0
    budget.check_healthy(205.0)
    assert budget.remaining == 2
    budget.try_spend()
    budget.on_connected(300.0)
    budget.on_disconnected(306.0)
    assert budget.remaining == 2


def test_an_hour_of_idle_closes_spends_nothing() -> None:
    """A silent caller and a server that closes idle sockets every 30 s for an hour."""
    budget = RetryBudget(max_attempts=3)
    for _ in range(120):
        action = classify(Failure(K.IDLE_CLOSED, code=2007), live=True)
        assert action is A.IDLE  # idle reconnects never touch the budget
    assert budget.remaining == 3
