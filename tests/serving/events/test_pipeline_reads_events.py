"""The next pipeline run reads appended events: dbt's staging models (and their tests) and the click
labels of int_impression_outcomes see them beside the rows an import wrote."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
from dbt.cli.main import dbtRunner

from serving.events.intake import EventIntake
from tests.serving.events.events_data import at, impression, parsed, playback
from vidrec.importers.common import ImportedLogs, empty_frame, write_imported

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
MODELS = ["stg_raw__users", "stg_raw__videos", "stg_raw__impressions", "stg_raw__watches", "stg_raw__searches",
          "int_event_window", "int_impression_outcomes"]


def import_tiny_log(raw_dir: Path) -> None:
    """Two users, three videos and one earlier impression with its watch, written as an importer writes."""
    frames = {name: empty_frame(name) for name in ("searches", "subscriptions")}
    frames["users"] = pd.DataFrame({
        "user_id": [1, 2], "signup_time": [datetime(2025, 12, 1)] * 2, "country": ["US", "IN"],
        "device": ["mobile", "tv"], "age_bucket": ["18-24", "25-34"], "gender": ["female", "male"],
    })
    frames["videos"] = pd.DataFrame({
        "video_id": [7, 8, 9], "creator_id": [70, 80, 90], "category": ["music", "news", "gaming"],
        "duration_seconds": [100.0, 200.0, 300.0], "upload_time": [datetime(2025, 12, 1)] * 3,
        "title_tokens": [["a"], ["b"], ["c"]],
    })
    frames["impressions"] = pd.DataFrame({
        "request_id": ["imported-1"], "user_id": [2], "video_id": [8], "surface": ["home"], "position": [0],
        "impression_time": [datetime(2026, 1, 4, 9)], "source": [None], "source_score": [None],
    }).astype({"position": "int32"})
    frames["watches"] = pd.DataFrame({
        "user_id": [2], "video_id": [8], "watch_time": [datetime(2026, 1, 4, 9, 1)], "watch_seconds": [150.0],
        "liked": [False], "shared": [False], "disliked": [False],
    })
    write_imported(ImportedLogs(source="tiny", frames=frames, parameters={}, notes=[]), raw_dir)


def test_appended_events_reach_dbt_staging_and_the_click_labels(tmp_path, monkeypatch):
    raw_dir = tmp_path / "raw"
    import_tiny_log(raw_dir)
    intake = EventIntake(raw_dir)
    intake.submit(parsed([
        impression("i7", "served-1", 7, 0, time=at("10:00:00")),
        impression("i9", "served-1", 9, 1, time=at("10:00:00")),
        playback("click", "c7", 7, at("10:00:20")),
    ]))
    intake.submit(parsed([  # the rest of that playback, in a later batch
        playback("watch", "w7", 7, at("10:00:20"), watch_seconds=80.0),
        playback("like", "l7", 7, at("10:00:20")),
    ]))

    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("VIDREC_WAREHOUSE_PATH", str(warehouse))  # dbt's profiles.yml reads it
    result = dbtRunner().invoke([
        "build", "--select", *MODELS, "--indirect-selection", "cautious",  # only tests of these models
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(tmp_path / "dbt_target"), "--log-path", str(tmp_path / "dbt_logs"),
        # dbt reads the validated layer, which has the raw layout: pointed at raw, it reads the
        # appended events as they were written (tests/dbt_project does the same)
        "--vars", json.dumps({"validated_dir": str(raw_dir), "marts_dir": str(tmp_path / "marts")}),
        "--no-use-colors", "--quiet",
    ])

    assert result.success, result.exception
    with duckdb.connect(str(warehouse)) as connection:  # dbt in-process still holds it open read-write
        outcomes = connection.sql(
            "select request_id, video_id, clicked, watch_seconds, liked from int_impression_outcomes order by all"
        ).fetchall()
        watches = connection.sql("select count(*) from stg_raw__watches").fetchall()
    assert outcomes == [
        ("imported-1", 8, True, 150.0, False),
        ("served-1", 7, True, 80.0, True),  # shown at 10:00, played from 10:00:20: a click, folded across batches
        ("served-1", 9, False, 0.0, False),
    ]
    assert watches == [(2,)]

