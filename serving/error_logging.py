"""Client errors are logged as one line, not as a server traceback.

BentoML logs every exception a handler raises at ERROR with its traceback, a malformed request's
`ValidationError` included: a client sending bad JSON fills the server log (and, under a process
supervisor that does not drain it, a pipe) with tracebacks that describe no server fault. The
access log already records each such request with its 400.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

BENTOML_HANDLER_LOGGER = "bentoml._internal.server.http_app"


class ClientErrorsWithoutTraceback(logging.Filter):
    """Turns a handler's traceback for a 4xx (invalid input) into one INFO line naming the error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if _is_client_error(error):
            record.msg = "%s on %s [%s]: %s"
            record.args = (type(error).__name__, *(record.args or ()), _summary(error))
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _summary(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
    return str(error).splitlines()[0] if str(error) else ""


def _is_client_error(error: BaseException | None) -> bool:
    if isinstance(error, ValidationError):
        return True
    return isinstance(error, BentoMLException) and 400 <= error.error_code.value < 500


def log_client_errors_without_traceback() -> None:
    """Install the filter once on BentoML's handler logger (idempotent: the service module may load twice)."""
    logger = logging.getLogger(BENTOML_HANDLER_LOGGER)
    if not any(isinstance(existing, ClientErrorsWithoutTraceback) for existing in logger.filters):
        logger.addFilter(ClientErrorsWithoutTraceback())
