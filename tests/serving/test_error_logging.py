"""A malformed request is logged as one line; a server fault keeps its traceback."""

from __future__ import annotations

import logging

import pytest
from bentoml.exceptions import NotFound, ServiceUnavailable
from pydantic import BaseModel, StrictInt, ValidationError

from serving.error_logging import BENTOML_HANDLER_LOGGER, log_client_errors_without_traceback


class Request(BaseModel):
    user_id: StrictInt


def log_handler_failure(error: BaseException) -> None:
    """What BentoML's `log_exception` does when a handler raises `error`."""
    try:
        raise error
    except BaseException:
        handler_logger = logging.getLogger(BENTOML_HANDLER_LOGGER)
        handler_logger.error("Exception on %s [%s]", "/recommend", "POST", exc_info=True)  # noqa: G201 - BentoML's own call


def invalid_request_error() -> ValidationError:
    try:
        Request.model_validate_json(b'{"user_id": false}')
    except ValidationError as error:
        return error
    raise AssertionError("a boolean user id validated")


@pytest.fixture(autouse=True)
def installed_filter():
    log_client_errors_without_traceback()
    log_client_errors_without_traceback()  # installing twice must not double anything


@pytest.mark.parametrize("error", [invalid_request_error(), NotFound("video 7 not found")],
                         ids=["invalid", "not_found"])
def test_client_errors_are_one_info_line(caplog, error):
    with caplog.at_level(logging.INFO, logger=BENTOML_HANDLER_LOGGER):
        log_handler_failure(error)

    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage().startswith(f"{type(error).__name__} on /recommend [POST]: ")
    assert "Traceback" not in caplog.text


def test_an_invalid_request_is_logged_naming_its_field(caplog):
    with caplog.at_level(logging.INFO, logger=BENTOML_HANDLER_LOGGER):
        log_handler_failure(invalid_request_error())

    assert caplog.records[0].getMessage() == (
        "ValidationError on /recommend [POST]: user_id: Input should be a valid integer"
    )


@pytest.mark.parametrize("error", [RuntimeError("index corrupt"), ServiceUnavailable("models not loaded")])
def test_server_faults_keep_their_traceback(caplog, error):
    with caplog.at_level(logging.INFO, logger=BENTOML_HANDLER_LOGGER):
        log_handler_failure(error)

    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Exception on /recommend [POST]"
    assert "Traceback" in caplog.text


def test_the_filter_is_installed_once():
    logger = logging.getLogger(BENTOML_HANDLER_LOGGER)
    assert sum(type(existing).__name__ == "ClientErrorsWithoutTraceback" for existing in logger.filters) == 1
