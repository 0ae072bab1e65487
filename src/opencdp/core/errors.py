"""The one error hierarchy of opencdp.

Domain code raises these; each API family turns them into its own wire shape in exactly one
place (``opencdp.api.errors``). Codes are stable snake_case strings so logs, metrics and tests
can rely on them; HTTP statuses live only in the api package.
"""

from __future__ import annotations


class OpenCdpError(Exception):
    """Base class: a failure the caller can understand and act on."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(OpenCdpError):
    """The request is malformed or violates a documented rule."""

    code = "bad_request"


class PayloadTooLarge(BadRequest):
    """The body (or one batch in it) is over a documented size limit."""

    code = "payload_too_large"


class Unauthenticated(OpenCdpError):
    """No credentials were presented."""

    code = "unauthenticated"


class Forbidden(OpenCdpError):
    """Credentials were presented but are wrong, or do not allow this resource."""

    code = "forbidden"


class NotFound(OpenCdpError):
    """The addressed thing does not exist (or is not visible to this caller)."""

    code = "not_found"


class Conflict(OpenCdpError):
    """The request conflicts with the current state (e.g. a unique identity held elsewhere)."""

    code = "conflict"


class RateLimited(OpenCdpError):
    """Over a configured rate; ``retry_after`` is whole seconds to wait."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, scope: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope


class Unavailable(OpenCdpError):
    """A dependency (usually the database) cannot take the request now; retry later."""

    code = "unavailable"
