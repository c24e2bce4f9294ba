"""Every error becomes a JSON problem response (RFC 9457 style) with the right status.

``BlixardError`` subclasses carry their own status and code; request validation failures
name the field; anything else is a bug and answers 500 without leaking internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from blixard.api.responses import ProblemResponse
from blixard.errors import BlixardError

log = logging.getLogger("blixard.api")


def problem(status: int, code: str, detail: str, /, **extra: Any) -> ProblemResponse:
    """A problem body; the standard members win over same-named extras."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {**extra, "status": status, "code": code, "title": title, "detail": detail}
    return ProblemResponse(body, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


async def _blixard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BlixardError)
    if exc.status_code >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return problem(exc.status_code, exc.code, exc.message, **exc.details)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            # A JSON syntax error's location is a character offset, not a field.
            "field": "body" if e.get("type") == "json_invalid" else _field(tuple(e.get("loc", ()))),
            "message": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem(
        422, "invalid", f"{first['field']}: {first['message']}", field=first["field"], errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else "http_error"
    return problem(exc.status_code, code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal", "internal server error (this is a bug in Blixard)")


def install(app: FastAPI) -> None:
    app.add_exception_handler(BlixardError, _blixard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
