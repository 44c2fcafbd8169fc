"""Why a batch was not logged, and what the HTTP answer is: every refusal logs none of the batch."""

from __future__ import annotations

from http import HTTPStatus


class IntakeRefused(Exception):
    """The batch was not logged; `status` and `retry_after_seconds` say what to answer."""

    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class EventConflict(IntakeRefused):
    """An event id already names an event with other content: the client must fix it, not retry."""

    status = HTTPStatus.CONFLICT


class IntakeBacklogFull(IntakeRefused):
    """This worker holds as many events waiting to be written as it may: retry later."""

    status = HTTPStatus.TOO_MANY_REQUESTS


class IntakeUnavailable(IntakeRefused):
    """The raw log cannot be written now (lock busy, not created yet, I/O failure): retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
