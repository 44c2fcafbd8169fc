"""How the service opens its event intake and its served-impression log: from their settings, and
never at /recommend's expense."""

from __future__ import annotations

from serving.events.intake import IntakeLimits
from serving.service import _open_event_route, _open_served_log
from vidrec.settings import load_settings


def test_the_intake_appends_under_the_homes_raw_log_with_the_configured_limits(tmp_path):
    settings = load_settings(home=tmp_path, events_max_pending=5000, events_lock_wait_seconds=0.5,
                             events_retry_after_seconds=3)

    route = _open_event_route(settings)

    try:
        assert route.intake.raw_dir == tmp_path / "raw"
        assert route.intake.limits == IntakeLimits(max_pending_events=5000, lock_wait_seconds=0.5,
                                                   retry_after_seconds=3)
    finally:
        route.close()


def test_a_raw_log_that_cannot_be_opened_leaves_events_unavailable_and_says_why(tmp_path, caplog):
    home = tmp_path / "home"
    home.write_text("a file where the home directory should be")

    with caplog.at_level("ERROR", logger="serving.service"):
        route = _open_event_route(load_settings(home=home))

    assert route is None
    assert "POST /events will answer 503" in caplog.text
    assert str(home / "raw") in caplog.text


def test_the_served_log_writes_through_the_event_intake_with_the_configured_bound(tmp_path):
    settings = load_settings(home=tmp_path, served_log_max_pending=500, served_log_flush_seconds=0.5)
    route = _open_event_route(settings)

    served_log = _open_served_log(settings, route)

    try:
        assert served_log.intake is route.intake
        assert (served_log.max_pending, served_log.flush_seconds) == (500, 0.5)
    finally:
        served_log.close()
        route.close()


def test_the_served_log_can_be_switched_off_and_is_off_without_an_intake(tmp_path):
    switched_off = load_settings(home=tmp_path, served_log_enabled=False)
    route = _open_event_route(switched_off)
    try:
        assert _open_served_log(switched_off, route) is None
    finally:
        route.close()

    assert _open_served_log(load_settings(home=tmp_path), None) is None
