"""JobSpec.build and the validation helpers: every refusal names its field."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from blixard.domain import validation as v
from blixard.domain.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    NO_REQUIREMENTS,
    JobSpec,
    Requirements,
    error_info,
)
from blixard.domain.retry import DEFAULT_BACKOFF, Backoff
from blixard.errors import PayloadTooLarge, ValidationError

MIB = 1024 * 1024


def refused(field: str, payload: Any = None, **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        JobSpec.build({} if payload is None else payload, **kwargs)
    assert info.value.field == field, info.value.message
    assert info.value.message.startswith(f"{field}: ")
    return info.value


def test_defaults() -> None:
    spec = JobSpec.build({"a": 1})
    assert spec.payload_json == '{"a":1}'
    assert (spec.queue, spec.tenant) == ("default", "default")
    assert spec.worker_types == ()
    assert spec.requirements is NO_REQUIREMENTS
    assert spec.priority == 0
    assert spec.run_at is None
    assert spec.max_attempts == DEFAULT_MAX_ATTEMPTS == 3
    assert spec.backoff == DEFAULT_BACKOFF
    assert spec.timeout_s is None
    assert spec.idempotency_key is None


def test_everything_given_is_kept() -> None:
    backoff = Backoff(base_s=2)
    req = Requirements(cpu=1.5, memory_mb=256, gpu=1, labels={"zone": "eu-1"})
    spec = JobSpec.build(
        {"nested": {"list": [1, 2, None]}},
        queue="emails.high",
        tenant="acme:prod",
        worker_types=["wasm", "process"],
        requirements=req,
        priority=-7,
        run_at=1_800_000_000.0,
        max_attempts=1000,
        backoff=backoff,
        timeout_s=0.001,
        idempotency_key="k" * 256,
    )
    assert orjson.loads(spec.payload_json) == {"nested": {"list": [1, 2, None]}}
    assert spec.queue == "emails.high"
    assert spec.tenant == "acme:prod"
    assert spec.worker_types == ("wasm", "process")
    assert spec.requirements == req
    assert spec.priority == -7
    assert spec.run_at == 1_800_000_000.0
    assert spec.max_attempts == 1000
    assert spec.backoff is backoff
    assert spec.timeout_s == 0.001
    assert spec.idempotency_key == "k" * 256


# payload ---------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None, True, 1.5])
def test_payload_must_be_a_dict(payload: Any) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.build(payload)
    assert info.value.field == "payload"
    assert "payload" in info.value.message
    assert "JSON object" in info.value.message
    assert type(payload).__name__ in info.value.message


def test_payload_not_serialisable() -> None:
    exc = refused("payload", {"when": object()})
    assert "JSON-serialisable" in exc.message


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_payload_with_non_finite_numbers_is_refused(number: float) -> None:
    """JSON has no NaN/Infinity: orjson would silently store them as null."""
    exc = refused("payload", {"deep": [1, {"x": number}]})
    assert "payload" in exc.message


def test_payload_over_one_mib_is_too_large() -> None:
    big = {"blob": "x" * MIB}
    size = len(orjson.dumps(big))
    with pytest.raises(PayloadTooLarge) as info:
        JobSpec.build(big)
    exc = info.value
    assert exc.status_code == 413
    assert exc.code == "too_large"
    assert exc.field == "payload"
    assert str(size) in exc.message
    assert str(MIB) in exc.message
    assert exc.details["limit"] == MIB


def test_payload_of_exactly_the_limit_is_accepted() -> None:
    overhead = len(orjson.dumps({"b": ""}))
    payload = {"b": "x" * (MIB - overhead)}
    assert len(orjson.dumps(payload)) == MIB
    assert len(JobSpec.build(payload).payload_json) == MIB
    payload["b"] += "x"
    with pytest.raises(PayloadTooLarge):
        JobSpec.build(payload)


def test_custom_max_payload_bytes() -> None:
    payload = {"b": "x" * 100}
    size = len(orjson.dumps(payload))
    JobSpec.build(payload, max_payload_bytes=size)
    with pytest.raises(PayloadTooLarge) as info:
        JobSpec.build(payload, max_payload_bytes=size - 1)
    assert f"is {size} bytes, the limit is {size - 1}" in info.value.message


# names -----------------------------------------------------------------------------------
BAD_NAMES = ["", "-leading", ".dot", "has space", "x" * 65, "ünï", "semi;colon", "a\nb"]
GOOD_NAMES = ["a", "A9", "x" * 64, "a_b.c:d/e-f", "0start"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_queue_name(name: str) -> None:
    exc = refused("queue", queue=name)
    assert repr(name) in exc.message


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_tenant_name(name: str) -> None:
    refused("tenant", tenant=name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    spec = JobSpec.build({}, queue=name, tenant=name, worker_types=[name])
    assert (spec.queue, spec.tenant, spec.worker_types) == (name, name, (name,))


def test_non_string_queue() -> None:
    refused("queue", queue=5)


def test_bad_worker_type_names_its_index() -> None:
    refused("worker_types[1]", worker_types=["process", "bad type"])


def test_worker_types_deduplicated_in_order() -> None:
    spec = JobSpec.build({}, worker_types=["wasm", "process", "wasm", "python", "process"])
    assert spec.worker_types == ("wasm", "process", "python")


def test_bad_worker_type_index_counts_after_deduplication() -> None:
    refused("worker_types[1]", worker_types=["a", "a", "b c"])


# numbers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [-1_000_001, 1_000_001])
def test_priority_out_of_range(value: int) -> None:
    exc = refused("priority", priority=value)
    assert "between" in exc.message


@pytest.mark.parametrize("value", [-1_000_000, 0, 1_000_000])
def test_priority_in_range(value: int) -> None:
    assert JobSpec.build({}, priority=value).priority == value


@pytest.mark.parametrize("value", [1.5, "1", None, True, math.nan])
def test_priority_must_be_an_integer(value: Any) -> None:
    refused("priority", priority=value)


@pytest.mark.parametrize("value", [0, -1, 1001, "3", None, False])
def test_max_attempts_out_of_range_or_not_a_number(value: Any) -> None:
    refused("max_attempts", max_attempts=value)


@pytest.mark.parametrize("value", [1, 1000])
def test_max_attempts_bounds(value: int) -> None:
    assert JobSpec.build({}, max_attempts=value).max_attempts == value


def test_max_attempts_must_be_an_integer() -> None:
    """2.5 attempts is not a number of attempts; it must not be truncated silently to 2."""
    refused("max_attempts", max_attempts=2.5)


@pytest.mark.parametrize("value", [0, 0.0009, -1, 30 * 86_400 + 1, math.nan, math.inf, "5"])
def test_timeout_out_of_range(value: Any) -> None:
    refused("timeout_s", timeout_s=value)


@pytest.mark.parametrize("value", [0.001, 1, 30 * 86_400])
def test_timeout_bounds(value: float) -> None:
    assert JobSpec.build({}, timeout_s=value).timeout_s == value


@pytest.mark.parametrize("value", [-1.0, 32_503_680_001.0])
def test_run_at_out_of_range(value: float) -> None:
    refused("run_at", run_at=value)


def test_idempotency_key_length() -> None:
    refused("idempotency_key", idempotency_key="")
    exc = refused("idempotency_key", idempotency_key="k" * 257)
    assert "1-256" in exc.message
    assert JobSpec.build({}, idempotency_key="k").idempotency_key == "k"


# requirements and labels -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("req", "field"),
    [
        (Requirements(cpu=-1), "requirements.cpu"),
        (Requirements(cpu=100_001), "requirements.cpu"),
        (Requirements(memory_mb=-5), "requirements.memory_mb"),
        (Requirements(gpu=-1), "requirements.gpu"),
        (Requirements(gpu=1025), "requirements.gpu"),
        (Requirements(labels={"bad key": "v"}), "requirements.labels.bad key"),
        (Requirements(labels={"zone": "v" * 257}), "requirements.labels.zone"),
        (Requirements(labels={"zone": 3}), "requirements.labels.zone"),  # type: ignore[dict-item]
        (Requirements(labels={f"k{i}": "v" for i in range(65)}), "requirements.labels"),
    ],
)
def test_requirements_validated(req: Requirements, field: str) -> None:
    refused(field, requirements=req)


def test_requirements_accepted_and_empty_flag() -> None:
    req = Requirements(cpu=0.5, labels={f"k{i}": "v" * 256 for i in range(64)})
    assert JobSpec.build({}, requirements=req).requirements == req
    assert not req.empty
    assert Requirements().empty
    assert not Requirements(gpu=1).empty
    assert Requirements(cpu=1, memory_mb=2, gpu=3, labels={"a": "b"}).to_dict() == {
        "cpu": 1,
        "memory_mb": 2,
        "gpu": 3,
        "labels": {"a": "b"},
        "constraints": [],
    }


def test_check_labels_returns_a_copy() -> None:
    labels = {"zone": "eu"}
    out = v.check_labels("labels", labels)
    assert out == labels
    assert out is not labels


@pytest.mark.parametrize("value", [True, "1", None, math.nan, [1]])
def test_check_range_refuses_non_numbers(value: Any) -> None:
    with pytest.raises(ValidationError, match=r"^f: must be a number$"):
        v.check_range("f", value, 0, 10)


def test_check_range_message_has_the_bounds_and_value() -> None:
    with pytest.raises(ValidationError, match=r"^f: must be between 0 and 10, got 11$"):
        v.check_range("f", 11, 0, 10)
    assert v.check_range("f", 10, 0, 10) == 10


def test_error_info_shape() -> None:
    assert error_info("timeout", "too slow", timeout_s=3) == {
        "kind": "timeout",
        "message": "too slow",
        "timeout_s": 3,
    }
