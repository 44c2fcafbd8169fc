"""The served-feature log keeps its retention window, counted back from its newest day, and never
a day the skew checks read."""

from datetime import datetime, timedelta

import pandas as pd
import pytest

from serving.served_log.feature_files import read_recent, served_feature_files, write_day_file
from serving.served_log.feature_retention import prune_served_feature_log

NEWEST = datetime(2026, 3, 10)
KINDS = {"watch_seconds_28d": "numeric"}


def _log_days(directory, days_back):
    """One file of two served items for each day `days_back` days before NEWEST (at 12:00)."""
    for back in days_back:
        when = NEWEST - timedelta(days=back) + timedelta(hours=12)
        rows = [{"request_id": f"r{back}", "user_id": 1, "video_id": video, "position": position,
                 "request_time": when, "ranker_version": "3", "degraded": "", "watch_seconds_28d": 60.0}
                for position, video in enumerate((10, 20))]
        write_day_file(directory, when, rows, KINDS)


def _days(directory):
    return sorted(path.name for path in directory.iterdir())


def test_days_older_than_the_retention_go_and_the_rest_stay(tmp_path):
    _log_days(tmp_path, range(40))  # 2026-01-30 .. 2026-03-10

    pruned = prune_served_feature_log(tmp_path, retention_days=30)

    assert (pruned.newest_day, pruned.first_kept_day) == ("2026-03-10", "2026-02-08")
    assert _days(tmp_path)[0] == "day=2026-02-08" and _days(tmp_path)[-1] == "day=2026-03-10"
    assert pruned.kept_days == 31 == len(_days(tmp_path))
    assert pruned.removed_days == [f"{NEWEST - timedelta(days=back):%Y-%m-%d}" for back in range(39, 30, -1)]
    assert pruned.removed_files == 9 and pruned.removed_bytes > 0
    assert len(served_feature_files(tmp_path)) == 31


def test_pruning_again_removes_nothing_more(tmp_path):
    _log_days(tmp_path, range(12))
    prune_served_feature_log(tmp_path, retention_days=7)
    left = _days(tmp_path)

    again = prune_served_feature_log(tmp_path, retention_days=7)

    assert again.removed_days == [] and again.removed_files == 0 and _days(tmp_path) == left


def test_the_skew_checks_window_reads_the_same_rows_after_pruning(tmp_path):
    _log_days(tmp_path, [0, 1, 3, 6, 7, 8, 20])
    before, kinds = read_recent(tmp_path, window_days=7)

    prune_served_feature_log(tmp_path, retention_days=7)

    after, kinds_after = read_recent(tmp_path, window_days=7)
    pd.testing.assert_frame_equal(after, before)
    assert kinds_after == kinds and "day=2026-02-18" not in _days(tmp_path)  # 20 days back: gone


def test_a_log_that_stopped_keeps_its_last_days(tmp_path):
    """Counted from the log's newest day, not today: a service that stopped logging a year ago
    still has its last window to compare."""
    _log_days(tmp_path, [0, 1, 2])

    pruned = prune_served_feature_log(tmp_path, retention_days=7)

    assert pruned.removed_days == [] and pruned.kept_days == 3


def test_entries_that_are_not_day_directories_are_left_alone_and_named(tmp_path):
    _log_days(tmp_path, [0, 40])
    (tmp_path / "day=not-a-date").mkdir()
    (tmp_path / "README.txt").write_text("notes")

    pruned = prune_served_feature_log(tmp_path, retention_days=30)

    assert pruned.unrecognised == ["README.txt", "day=not-a-date"]
    assert _days(tmp_path) == ["README.txt", "day=2026-03-10", "day=not-a-date"]
    frame, _ = read_recent(tmp_path, window_days=7)  # the skew checks' reader passes over them too
    assert frame["request_id"].unique().tolist() == ["r0"]


def test_nothing_logged_yet_is_an_empty_log(tmp_path):
    pruned = prune_served_feature_log(tmp_path / "never_written", retention_days=30)

    assert pruned.newest_day is None and pruned.removed_days == [] and pruned.kept_days == 0
    with pytest.raises(ValueError, match="retention_days must be at least 1"):
        prune_served_feature_log(tmp_path, retention_days=0)
