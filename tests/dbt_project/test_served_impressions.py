"""What the service logs of what it served reaches the warehouse: staging and the impression
outcomes carry the serving columns, null for rows that never had them (older files, simulated or
imported rows), and a raw log that predates the columns altogether still builds."""

from __future__ import annotations

from datetime import datetime

from tests.dbt_project.conftest import DBT_VARS, BuiltMarts, run_dbt, write_raw_tables

SERVING_COLUMNS = ("score", "propensity", "reason", "explored", "head_predictions", "model_versions")


def test_staging_carries_what_the_service_logged(built_marts: BuiltMarts) -> None:
    (served,) = built_marts.warehouse_rows("stg_raw__impressions", where="request_id = 'r2'")

    assert {column: served[column] for column in SERVING_COLUMNS} == {
        "score": 12.5,
        "propensity": 0.97,
        "reason": "because_you_watched",
        "explored": False,
        "head_predictions": {"watch_time": 10.0, "click": 0.4, "like": 0.2, "skip": 0.1},
        "model_versions": {"ranker": "3", "retrieval": "2"},
    }


def test_rows_from_files_without_the_serving_columns_read_them_as_null(built_marts: BuiltMarts) -> None:
    rows = built_marts.warehouse_rows("stg_raw__impressions", where="request_id <> 'r2'")

    # r1 and r4 come from a file written before the columns existed, r3 from one that has them
    assert sorted({row["request_id"] for row in rows}) == ["r1", "r3", "r4"]
    assert {(row["request_id"], column): row[column] for row in rows for column in SERVING_COLUMNS} == {
        (row["request_id"], column): None for row in rows for column in SERVING_COLUMNS
    }


def test_impression_outcomes_keep_the_logged_policy_beside_the_outcome(built_marts: BuiltMarts) -> None:
    (served,) = built_marts.warehouse_rows("int_impression_outcomes", where="request_id = 'r2'")

    assert served["clicked"]  # user 1 watched video 12 two minutes after it was shown
    assert (served["propensity"], served["explored"], served["score"]) == (0.97, False, 12.5)
    assert served["head_predictions"]["like"] == 0.2
    assert served["model_versions"] == {"ranker": "3", "retrieval": "2"}


def test_a_raw_log_from_before_the_serving_columns_builds_and_an_unknown_user_warns(tmp_path) -> None:
    """Every impressions file lacks the serving columns (a log simulated before they existed), and
    one impression is of a user the users table lacks (the service logs its answers to unknown
    users): staging builds, its columns are null, and the relationship test warns, not fails."""
    shown = dict(surface="home", position=0, impression_time=datetime(2026, 1, 2, 9, 0))
    write_raw_tables(tmp_path / "raw", {
        "users": [dict(user_id=1, signup_time=datetime(2025, 12, 1), country="US", device="mobile",
                       age_bucket="18-24", gender="female")],
        "videos": [dict(video_id=10, creator_id=100, category="music", duration_seconds=100.0,
                        upload_time=datetime(2025, 12, 20), title_tokens=["lofi"])],
        "impressions": [dict(request_id="r1", user_id=1, video_id=10, **shown),
                        dict(request_id="r2", user_id=99, video_id=10, **shown)],
    }, {"impressions": {"2026-01-02"}})
    dbt_vars = {"validated_dir": str(tmp_path / "raw"), "marts_dir": str(tmp_path / "marts"), **DBT_VARS}

    # the three staging models and the tests among them alone (cautious: no test of an unbuilt model)
    result = run_dbt(["build", "--select", "stg_raw__users", "stg_raw__videos", "stg_raw__impressions",
                      "--indirect-selection", "cautious"], home=tmp_path, dbt_vars=dbt_vars)

    statuses = {r.node.name: str(r.status) for r in result.result.results}
    assert result.success, statuses
    relationship = next(name for name in statuses if name.startswith("relationships_stg_raw__impressions_user_id"))
    assert statuses[relationship] == "warn"
    assert {status for name, status in statuses.items() if name != relationship} <= {"success", "pass"}
    rows = BuiltMarts(tmp_path, result).warehouse_rows("stg_raw__impressions", order_by="request_id")
    assert [(row["request_id"], *(row[column] for column in SERVING_COLUMNS)) for row in rows] == [
        ("r1", None, None, None, None, None, None),
        ("r2", None, None, None, None, None, None),
    ]
