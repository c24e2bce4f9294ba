"""The one exception hierarchy of Blixard.

Every layer raises these; library errors are translated at the edge with ``raise ... from``.
The HTTP API maps each class to one status code (see ``api/problems.py``), and the client
maps the status code back to the class, so callers catch the same type on both sides.
"""

from __future__ import annotations

from typing import Any


class BlixardError(Exception):
    """Root of every error Blixard raises on purpose."""

    status_code = 500
    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class ValidationError(BlixardError):
    """Input that cannot be accepted; names the offending field."""

    status_code = 422
    code = "invalid"

    def __init__(self, field: str, message: str, **details: Any) -> None:
        super().__init__(f"{field}: {message}", field=field, **details)
        self.field = field


class PayloadTooLarge(ValidationError):
    status_code = 413
    code = "too_large"


class NotFound(BlixardError):
    status_code = 404
    code = "not_found"


class JobNotFound(NotFound):
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found", job_id=job_id)


class WorkerNotFound(NotFound):
    code = "worker_not_found"

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id} not found", worker_id=worker_id)


class QueueNotFound(NotFound):
    code = "queue_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name} not found", queue=name)


class TenantNotFound(NotFound):
    code = "tenant_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"tenant {name} not found", tenant=name)


class GroupNotFound(NotFound):
    code = "group_not_found"

    def __init__(self, group_id: str) -> None:
        super().__init__(f"group {group_id} not found", group_id=group_id)


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id} not found", schedule_id=schedule_id)


class Conflict(BlixardError):
    """A state change that does not apply to the current state (stale, duplicate, forbidden)."""

    status_code = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class StaleReport(Conflict):
    code = "stale_report"


class StorageError(BlixardError):
    """The database failed or is unreachable."""

    status_code = 503
    code = "storage_unavailable"


class SchemaTooNew(StorageError):
    code = "schema_too_new"


class ConfigurationError(BlixardError):
    """A setting or a URL that cannot work; raised at start-up, never mid-run."""

    status_code = 500
    code = "configuration"


class ListenError(BlixardError):
    """The server cannot listen on its address (taken, or not this machine's)."""

    code = "cannot_listen"


class BackendError(BlixardError):
    """An execution backend is missing, unhealthy or misconfigured."""

    code = "backend"


class BackendNotFound(BackendError):
    status_code = 400
    code = "backend_not_found"


class ClientError(BlixardError):
    """The server could not be reached, or answered something the client did not expect."""

    status_code = 503
    code = "unreachable"
