"""The connector error hierarchy, written out once.

Resolvers map these onto GraphQL error codes; connectors raise nothing else for
problems with the center itself.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises about its center."""

    code = "CENTER_ERROR"

    def __init__(self, message: str, *, center: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.center = center


class CenterUnreachable(ConnectorError):
    """The center could not be reached or answered with a server-side failure."""

    code = "CENTER_UNAVAILABLE"


class CenterRefusedCredentials(CenterUnreachable):
    """The center no longer accepts the gateway's credentials (a revoked or expired token)."""

    code = "CENTER_UNAUTHORIZED"


class CenterTimeout(ConnectorError):
    """The center did not answer within its deadline."""

    code = "CENTER_TIMEOUT"


class SubmissionRejected(ConnectorError):
    """The center understood the request and refused it (bad partition, too large, ...)."""

    code = "CENTER_REJECTED"


class JobNotFound(ConnectorError):
    """The center does not know the job (never existed, or already forgotten)."""

    code = "NOT_FOUND"


class LogsNotReadable(ConnectorError):
    """The center kind cannot read a job's output incrementally (a connector that predates ``read_log``)."""

    code = "LOGS_UNAVAILABLE"
