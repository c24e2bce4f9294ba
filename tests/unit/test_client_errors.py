"""Problem responses turn back into the Blixard exception the server raised (no I/O)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from blixard import errors
from blixard.client.core import ApiError, error_from_response


def problem(status: int, code: str, detail: str = "it went wrong", **extra: Any) -> httpx.Response:
    body = {**extra, "status": status, "code": code, "title": "T", "detail": detail}
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (409, "conflict", errors.Conflict),
        (409, "invalid_transition", errors.InvalidTransition),
        (409, "stale_report", errors.StaleReport),
        (503, "storage_unavailable", errors.StorageError),
        (503, "schema_too_new", errors.SchemaTooNew),
        (400, "backend_not_found", errors.BackendNotFound),
        (404, "not_found", errors.NotFound),
    ],
)
def test_codes_map_to_classes(status: int, code: str, cls: type[errors.BlixardError]) -> None:
    exc = error_from_response(problem(status, code, reason="r"))
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.message == "it went wrong"
    assert exc.details["reason"] == "r"


def test_validation_error_keeps_its_field() -> None:
    exc = error_from_response(problem(422, "invalid", "jobs[3].queue: bad", field="jobs[3].queue"))
    assert type(exc) is errors.ValidationError
    assert isinstance(exc, errors.ValidationError)
    assert exc.field == "jobs[3].queue"
    assert exc.status_code == 422


def test_payload_too_large() -> None:
    exc = error_from_response(problem(413, "too_large", field="payload", limit=10))
    assert type(exc) is errors.PayloadTooLarge
    assert isinstance(exc, errors.ValidationError)
    assert exc.details["limit"] == 10


def test_unknown_code_is_an_api_error() -> None:
    exc = error_from_response(problem(418, "teapot"))
    assert type(exc) is ApiError
    assert exc.status_code == 418


def test_non_json_body() -> None:
    exc = error_from_response(httpx.Response(502, text="Bad Gateway from the proxy"))
    assert type(exc) is ApiError
    assert exc.status_code == 502
    assert "Bad Gateway" in exc.message


def _round_trip(exc: errors.BlixardError) -> errors.BlixardError:
    """The problem body the API makes of ``exc``, decoded again by the client."""
    body = exc.to_dict()
    return error_from_response(
        problem(exc.status_code, body.pop("code"), body.pop("message"), **body)
    )


def test_unknown_job_is_job_not_found() -> None:
    """errors.py: "callers catch the same type on both sides of the wire"."""
    exc = _round_trip(errors.JobNotFound("j1"))
    assert type(exc) is errors.JobNotFound
    assert exc.status_code == 404


def test_unknown_worker_is_worker_not_found() -> None:
    """The agent re-registers on ``except WorkerNotFound`` (agent.py): the client has to
    raise that class for a 404 on an unknown worker."""
    exc = _round_trip(errors.WorkerNotFound("w1"))
    assert type(exc) is errors.WorkerNotFound


def test_every_error_class_has_its_own_code() -> None:
    """Codes select the class on the client side: two classes sharing one would collapse."""
    seen: dict[str, type[errors.BlixardError]] = {}
    pending: list[type[errors.BlixardError]] = [errors.BlixardError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is ApiError:
            continue
        assert seen.setdefault(cls.code, cls) is cls, (cls, seen[cls.code])
