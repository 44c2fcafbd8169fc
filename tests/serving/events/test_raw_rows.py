"""Events become raw rows with exactly the raw schema's columns, and a playback's fold ignores order."""

from __future__ import annotations

import itertools
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from serving.events.raw_rows import Playback, PlaybackKey, content_digest, impression_row, watch_row
from tests.serving.events.events_data import at, impression, parsed, playback
from vidrec.schema import IMPRESSIONS, WATCHES


def test_rows_have_the_columns_of_the_raw_schema_in_utc():
    shown, started = parsed([
        impression("i", "r", 7, 3, time="2026-01-05T11:00:00+01:00", source="co_watch", source_score=0.25),
        playback("click", "c", 7, "2026-01-05T05:00:05.123456-05:00"),
    ])

    row = impression_row(shown)
    key = PlaybackKey.of(started)

    assert list(row) == IMPRESSIONS.schema.names
    assert row["impression_time"] == datetime(2026, 1, 5, 10, 0)  # naive UTC, as the raw log stores time
    assert (row["source"], row["source_score"], row["position"]) == ("co_watch", 0.25, 3)
    assert list(watch_row(key, Playback())) == WATCHES.schema.names
    assert key.watch_time == datetime(2026, 1, 5, 10, 0, 5, 123456)


def test_click_watch_skip_and_like_fold_into_one_playback():
    events = parsed([
        playback("click", "c", 7, at("10:00:05")),
        playback("watch", "w1", 7, at("10:00:05"), watch_seconds=30.0),
        playback("like", "l", 7, at("10:00:05")),
        playback("watch", "w2", 7, at("10:00:05"), watch_seconds=12.0),  # a late, smaller progress report
    ])

    folded = Playback()
    for event in events:
        folded = folded.folded(event)

    assert folded == Playback(watch_seconds=30.0, liked=True)
    assert len({PlaybackKey.of(event) for event in events}) == 1


def test_a_resend_has_the_same_digest_and_an_edit_does_not():
    original, same_instant_other_zone, edited = parsed([
        playback("watch", "w", 7, "2026-01-05T10:00:05Z", watch_seconds=30.0),
        playback("watch", "w", 7, "2026-01-05T11:00:05+01:00", watch_seconds=30.0),
        playback("watch", "w", 7, "2026-01-05T10:00:05Z", watch_seconds=31.0),
    ])

    assert content_digest(original) == content_digest(same_instant_other_zone)
    assert content_digest(original) != content_digest(edited)


PLAYBACK_EVENTS = st.lists(
    st.one_of(
        st.just(("click", {})),
        st.just(("like", {})),
        st.tuples(st.sampled_from(["watch", "skip"]),
                  st.fixed_dictionaries({"watch_seconds": st.floats(0, 5000, allow_nan=False)})),
    ),
    min_size=1,
    max_size=6,
)


@given(PLAYBACK_EVENTS)
def test_the_fold_is_the_same_in_every_order_and_with_resends(kinds_and_fields):
    events = parsed([playback(kind, f"e{index}", 7, at("10:00:05"), **fields)
                     for index, (kind, fields) in enumerate(kinds_and_fields)])

    results = set()
    for order in itertools.islice(itertools.permutations(events), 24):
        folded = Playback()
        for event in (*order, *order[:2]):  # and some of them again
            folded = folded.folded(event)
        results.add(folded)

    seconds = [event.watch_seconds for event in events if event.kind in ("watch", "skip")]
    assert results == {Playback(watch_seconds=max(seconds, default=0.0),
                                liked=any(event.kind == "like" for event in events))}
