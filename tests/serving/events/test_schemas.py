"""POST /events bodies are validated field by field, and every error names the field it is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from serving.api_errors import normalize_error_body
from serving.events.schemas import MAX_EVENTS_PER_BATCH, EventBatch, WatchEvent
from tests.serving.events.events_data import at, impression, playback


def errors_of(body: dict) -> dict[str, str]:
    """`{"events.0.watch.watch_seconds": "greater_than_equal", ...}` for an invalid body."""
    with pytest.raises(ValidationError) as raised:
        EventBatch.model_validate_json(json.dumps(body))
    return {".".join(map(str, error["loc"])): error["type"] for error in raised.value.errors()}


def test_a_batch_of_every_kind_validates():
    batch = EventBatch.model_validate_json(json.dumps({"events": [
        impression("i", "r", 7, 0, source="ann", source_score=0.5),
        playback("click", "c", 7, at("10:00:05")),
        playback("watch", "w", 7, at("10:00:05"), watch_seconds=12),
        playback("skip", "s", 8, at("10:01:00"), watch_seconds=1.5),
        playback("like", "l", 7, at("10:00:05")),
    ]}))

    assert [event.kind for event in batch.events] == ["impression", "click", "watch", "skip", "like"]
    assert isinstance(batch.events[2], WatchEvent) and batch.events[2].watch_seconds == 12.0


@pytest.mark.parametrize(
    ("field", "value", "expected_type"),
    [
        ("user_id", True, "int_type"),  # a bool is not an id
        ("user_id", "1", "int_type"),  # nor is a string of digits
        ("user_id", 0, "greater_than_equal"),  # raw ids are positive
        ("video_id", 2**63, "less_than_equal"),  # past BIGINT
        ("watch_seconds", -1.0, "greater_than_equal"),
        ("watch_seconds", "12", "float_type"),
        ("watch_seconds", 86_401.0, "less_than_equal"),
        ("watch_time", "2026-01-05T10:00:00", "timezone_aware"),  # naive: which zone?
        ("watch_time", 1767607200, "datetime_type"),  # no epoch numbers
        ("event_id", "", "string_too_short"),
        ("event_id", "has space", "string_pattern_mismatch"),
    ],
)
def test_a_bad_field_is_named_with_its_event_index_and_kind(field, value, expected_type):
    event = playback("watch", "w", 7, at("10:00:05"), watch_seconds=3.0)
    bad = {"events": [playback("click", "c", 7, at("10:00:05")), {**event, field: value}]}

    assert errors_of(bad) == {f"events.1.watch.{field}": expected_type}


def test_timestamps_in_the_future_are_refused_past_the_clock_skew():
    soon = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ok = EventBatch.model_validate_json(json.dumps({"events": [impression("i", "r", 7, 0, time=soon)]}))

    assert ok.events[0].impression_time.tzinfo is not None
    assert errors_of({"events": [impression("i", "r", 7, 0, time=tomorrow)]}) == {
        "events.0.impression.impression_time": "value_error"
    }
    assert errors_of({"events": [impression("i", "r", 7, 0, time="1990-01-01T00:00:00Z")]}) == {
        "events.0.impression.impression_time": "value_error"
    }


@pytest.mark.parametrize(
    ("change", "location", "expected_type"),
    [
        ({"surface": "sidebar"}, "events.0.impression.surface", "literal_error"),
        ({"position": -1}, "events.0.impression.position", "greater_than_equal"),
        ({"position": 2**31}, "events.0.impression.position", "less_than_equal"),
        ({"source": "magic"}, "events.0.impression.source", "literal_error"),
        ({"source_score": 0.0}, "events.0.impression.source_score", "greater_than"),
        ({"source_score": 1.5}, "events.0.impression.source_score", "less_than_equal"),
        ({"request_id": 12}, "events.0.impression.request_id", "string_type"),
        ({"watch_seconds": 3.0}, "events.0.impression.watch_seconds", "extra_forbidden"),  # wrong kind's field
        ({"kind": "purchase"}, "events.0", "union_tag_invalid"),
    ],
)
def test_impression_fields_are_checked_against_the_raw_schema(change, location, expected_type):
    assert errors_of({"events": [{**impression("i", "r", 7, 0), **change}]}) == {location: expected_type}


def test_a_missing_field_is_named():
    event = playback("watch", "w", 7, at("10:00:05"))  # no watch_seconds

    assert errors_of({"events": [event]}) == {"events.0.watch.watch_seconds": "missing"}


def test_a_batch_is_between_one_and_the_maximum_number_of_events():
    too_many = [playback("click", f"c{index}", 7, at("10:00:05")) for index in range(MAX_EVENTS_PER_BATCH + 1)]

    assert errors_of({"events": []}) == {"events": "too_short"}
    assert errors_of({"events": too_many}) == {"events": "too_long"}
    assert errors_of({"events": [], "extra": 1}) == {"events": "too_short", "extra": "extra_forbidden"}


def test_the_400_body_names_the_field_in_the_documented_error_shape():
    """What BentoML answers for a ValidationError, after the API guard's normalisation (api_errors.py)."""
    with pytest.raises(ValidationError) as raised:
        EventBatch.model_validate_json(json.dumps({"events": [playback("skip", "s", 7, at("10:00:05"),
                                                                        watch_seconds=-2.0)]}))
    bentoml_answer = {"error": "1 validation error", "detail": raised.value.errors(include_context=False,
                                                                                   include_input=False)}

    body = json.loads(normalize_error_body(400, json.dumps(bentoml_answer).encode()))

    assert body["error"].startswith("invalid request: events.0.skip.watch_seconds: Input should be greater than")
    assert body["detail"] == "events.0.skip.watch_seconds: greater_than_equal"
