"""Retry policy: exponential backoff with jitter and the decision after a failure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blixard.domain.retry import DEFAULT_BACKOFF, Backoff, decide_after_failure
from blixard.errors import ValidationError

backoffs = st.builds(
    Backoff,
    base_s=st.floats(0, 86_400),
    factor=st.floats(1, 100),
    max_s=st.floats(0, 7 * 86_400),
    jitter=st.floats(0, 1),
)
attempts = st.integers(min_value=0, max_value=10_000)
uniform = st.floats(min_value=0, max_value=1, exclude_max=True)


def capped(b: Backoff, attempt: int) -> float:
    return min(b.max_s, b.base_s * b.factor ** min(max(attempt - 1, 0), 64))


@given(b=backoffs, attempt=attempts, u=uniform)
def test_delay_is_within_the_jitter_window_and_capped(b: Backoff, attempt: int, u: float) -> None:
    top = capped(b, attempt)
    d = b.delay(attempt, u)
    assert math.isfinite(d)
    assert d <= b.max_s * (1 + 1e-12)
    assert top * (1 - b.jitter) * (1 - 1e-12) - 1e-12 <= d <= top * (1 + 1e-12) + 1e-12


@given(b=backoffs, attempt=attempts)
def test_no_jitter_draw_gives_the_capped_delay(b: Backoff, attempt: int) -> None:
    assert b.delay(attempt, 0.0) == pytest.approx(capped(b, attempt))


@given(attempt=st.integers(1, 8))
def test_exponent_grows_by_factor(attempt: int) -> None:
    b = Backoff(base_s=1.0, factor=3.0, max_s=600_000, jitter=0.0)
    assert b.delay(attempt, 0.5) == pytest.approx(3.0 ** (attempt - 1))
    assert b.delay(attempt + 1, 0.5) == pytest.approx(3 * b.delay(attempt, 0.5))


def test_concrete_delays() -> None:
    b = Backoff(base_s=2.0, factor=2.0, max_s=10.0, jitter=0.5)
    assert [b.delay(n, 0.0) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.delay(1, 0.5) == pytest.approx(1.5)  # 2 * (1 - 0.5 * 0.5)
    assert b.delay(4, 0.999) == pytest.approx(10 * (1 - 0.5 * 0.999))
    assert b.delay(0, 0.0) == 2.0  # attempt 0 behaves like attempt 1


def test_absurd_attempt_numbers_do_not_overflow() -> None:
    b = Backoff(base_s=86_400, factor=100, max_s=7 * 86_400, jitter=0)
    assert b.delay(10**9, 0.0) == 7 * 86_400


def test_defaults() -> None:
    assert Backoff(1.0, 2.0, 300.0, 0.5) == DEFAULT_BACKOFF
    assert DEFAULT_BACKOFF.to_dict() == {
        "base_s": 1.0,
        "factor": 2.0,
        "max_s": 300.0,
        "jitter": 0.5,
    }


def test_dict_round_trip() -> None:
    b = Backoff(base_s=0.5, factor=1.5, max_s=60, jitter=0.1)
    assert Backoff.from_dict(b.to_dict()) == b
    assert Backoff.from_dict({"base_s": "3"}) == Backoff(base_s=3.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_s", -0.1),
        ("base_s", 86_400.5),
        ("base_s", math.nan),
        ("factor", 0.99),
        ("factor", 100.1),
        ("max_s", -1),
        ("max_s", 7 * 86_400 + 1),
        ("jitter", -0.01),
        ("jitter", 1.01),
    ],
)
def test_invalid_parameters_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        Backoff(**{field: value})
    assert info.value.field == f"backoff.{field}"
    assert info.value.message.startswith(f"backoff.{field}: ")
    assert info.value.status_code == 422


@pytest.mark.parametrize(
    ("field", "value"), [("base_s", 0), ("base_s", 86_400), ("factor", 1), ("jitter", 1)]
)
def test_boundary_parameters_are_accepted(field: str, value: float) -> None:
    assert getattr(Backoff(**{field: value}), field) == value


@given(
    attempt=st.integers(1, 50),
    max_attempts=st.integers(1, 50),
    retryable=st.booleans(),
    u=uniform,
)
def test_decide_after_failure(attempt: int, max_attempts: int, retryable: bool, u: float) -> None:
    b = Backoff(base_s=1, factor=2, max_s=30, jitter=0.5)
    now = 1_000.0
    d = decide_after_failure(
        attempt=attempt, max_attempts=max_attempts, backoff=b, retryable=retryable, now=now, u=u
    )
    if retryable and attempt < max_attempts:
        assert d.requeue
        assert d.run_at == pytest.approx(now + b.delay(attempt, u))
        assert now + capped(b, attempt) * 0.5 - 1e-9 <= d.run_at <= now + capped(b, attempt)
    else:
        assert not d.requeue
        assert d.run_at is None


def test_decide_last_attempt_fails() -> None:
    d = decide_after_failure(
        attempt=3, max_attempts=3, backoff=DEFAULT_BACKOFF, retryable=True, now=0.0, u=0.0
    )
    assert (d.requeue, d.run_at) == (False, None)


def test_decide_non_retryable_fails_with_attempts_left() -> None:
    d = decide_after_failure(
        attempt=1, max_attempts=10, backoff=DEFAULT_BACKOFF, retryable=False, now=0.0, u=0.0
    )
    assert (d.requeue, d.run_at) == (False, None)


def test_decide_requeues_with_backoff() -> None:
    d = decide_after_failure(
        attempt=2, max_attempts=3, backoff=DEFAULT_BACKOFF, retryable=True, now=100.0, u=0.0
    )
    assert d.requeue
    assert d.run_at == 102.0
