"""A fresh raw log and an intake over it, for the tests of the intake's appends."""

import pytest

from serving.events.intake import EventIntake
from tests.serving.events.events_data import make_raw_log


@pytest.fixture
def raw_dir(tmp_path):
    return make_raw_log(tmp_path / "raw")


@pytest.fixture
def intake(raw_dir):
    intake = EventIntake(raw_dir)
    yield intake
    intake.close()
