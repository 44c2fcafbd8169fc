"""Jobs: what a click, a schedule or a sensor asks Dagster to run."""

from dagster import AssetSelection, define_asset_job, in_process_executor

refresh_everything = define_asset_job(
    "refresh_everything",
    selection=AssetSelection.all(),
    # One process, steps in order: on 2 cores, parallel steps (dbt, DuckDB's joins, torch) each
    # use both cores already, and per-step processes would each pay seconds of imports.
    executor_def=in_process_executor,
    description="Raw logs → validated layer (bad rows quarantined) → dbt → Feast → models → MLflow → champion "
    "promotion → Bento, with every check. A run names a range of day partitions (raw_days): the raw and "
    "validated event tables of those days are judged again, everything after them rebuilds whole.",
)
