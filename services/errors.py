"""Domain errors raised by services; `api/` maps each to one HTTP status and a problem-details body."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of expected failures a caller can act on."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    """The entity does not exist, or the current tenant may not see it (indistinguishable on purpose)."""

    status = 404
    title = "Not found"


class Conflict(DomainError):
    """The request collides with the current state (slot taken, duplicate, already claimed)."""

    status = 409
    title = "Conflict"


class InvalidInput(DomainError):
    """Input that passed schema validation but breaks a business rule."""

    status = 422
    title = "Invalid input"


class Forbidden(DomainError):
    """The actor is known but lacks the permission."""

    status = 403
    title = "Forbidden"


class Unauthorized(DomainError):
    """No valid credentials: the caller is not known at all."""

    status = 401
    title = "Unauthorized"


class ProviderError(DomainError):
    """An outside provider (Stripe, Twilio, SMTP) refused or failed the call; nothing was recorded here."""

    status = 502
    title = "Provider error"


class NotConfigured(DomainError):
    """A provider integration the request needs has no credentials or secret configured."""

    status = 503
    title = "Not configured"


class UnsupportedMedia(DomainError):
    """The body is in a format the endpoint does not take."""

    status = 415
    title = "Unsupported media type"


class TooLarge(DomainError):
    """The body is larger than the endpoint takes."""

    status = 413
    title = "Content too large"


class Malformed(DomainError):
    """A request that is authentic but not in the shape its sender documents; retrying it cannot help."""

    status = 400
    title = "Invalid webhook"


class RetryLater(DomainError):
    """The request cannot be applied yet (its owner is not known yet, or not uniquely): the sender retries."""

    status = 503
    title = "Not applied yet"
