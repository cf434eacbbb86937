import pytest

from voxlane.core.close_plan import Budget, DrainPlan


@pytest.mark.parametrize(
    ("timeout", "share", "reserve"),
    [(4.0, 0.5, 0.05), (1.0, 0.25, 0.0), (10.0, 0.9, 0.5), (0.2, 0.5, 0.01)],
)
def test_deadlines_are_ordered_and_within_budget(
    timeout: float, share: float, reserve: float
) -> None:
    b = Budget(close_timeout=timeout, settle_share=share, emit_reserve=reserve)
    p = b.close(100.0)
    assert 100.0 < p.settle_wait_deadline < p.cancel_deadline < p.settle_deadline
    assert p.settle_deadline < p.teardown_deadline <= p.hard_deadline
    assert p.hard_deadline == pytest.approx(100.0 + timeout)
    assert p.teardown_deadline == pytest.approx(100.0 + timeout - reserve)


def test_step_deadline_is_a_fair_share_of_what_is_left() -> None:
    p = Budget(close_timeout=4.0, settle_share=0.5, emit_reserve=0.0).close(0.0)
    # At t=2 (after settle), 2 s left for 4 steps: each gets 0.5 s at most.
    assert p.step_deadline(2.0, 4) == pytest.approx(2.5)
    # A step that used nothing leaves its time to the rest.
    assert p.step_deadline(2.0, 1) == pytest.approx(4.0)
    # Past the deadline nothing is left, never negative time.
    assert p.step_deadline(5.0, 3) == 5.0
    assert p.remaining(5.0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"close_timeout": 0},
        {"close_timeout": -1},
        {"settle_share": 0},
        {"settle_share": 1},
        {"emit_reserve": 5.0},
        {"drain_timeout": 0},
        {"settle_wait_share": 1},
        {"stream_release_timeout": 0},
    ],
)
def test_invalid_budgets_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Budget(**kwargs)


def test_one_plan_holds_every_split() -> None:
    b = Budget(close_timeout=4.0, emit_reserve=0.0, settle_share=0.5, settle_wait_share=0.75)
    p = b.close(10.0)
    assert p.settle_deadline == pytest.approx(12.0)
    assert p.settle_wait_deadline == pytest.approx(11.5)
    assert p.cancel_deadline == pytest.approx(11.75)
    assert b.drain(10.0).deadline == pytest.approx(20.0)
    assert b.stream_release_deadline(10.0) == pytest.approx(11.0)


def test_drain_plan() -> None:
    d = DrainPlan.start(10.0, 3.0)
    assert not d.expired(12.9) and d.expired(13.0)
    with pytest.raises(ValueError):
        DrainPlan.start(0.0, 0.0)


def test_a_caller_mid_utterance_gets_a_larger_settle_share() -> None:
    b = Budget(close_timeout=4.0, emit_reserve=0.0, settle_share=0.5, trailing_settle_share=0.75)
    assert b.close(0.0).settle_deadline == pytest.approx(2.0)
    plan = b.close(0.0, trailing_transcript=True)
    assert plan.settle_deadline == pytest.approx(3.0) and plan.teardown_deadline == 4.0
