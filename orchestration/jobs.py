"""Jobs: what a click, a schedule or a sensor asks Dagster to run."""

from dagster import AssetSelection, define_asset_job, in_process_executor, multiprocess_executor

# Experiments (a closed loop runs for minutes to hours and writes to the raw log) are launched on
# their own (orchestration/assets/experiments.py), never by a refresh, its schedule or its sensor.
EXPERIMENTS = AssetSelection.groups("experiments")

refresh_everything = define_asset_job(
    "refresh_everything",
    selection=AssetSelection.all() - EXPERIMENTS,
    # One process, steps in order: on 2 cores, parallel steps (dbt, DuckDB's joins, torch) each
    # use both cores already, and per-step processes would each pay seconds of imports.
    executor_def=in_process_executor,
    description="Raw logs → validated layer (bad rows quarantined) → dbt → Feast → models → MLflow → champion "
    "promotion → Bento, with every check. A run names a range of day partitions (raw_days): the raw and "
    "validated event tables of those days are judged again, everything after them rebuilds whole.",
)

# The same graph with Dagster's multiprocess executor: independent steps (the validated tables,
# the two training frames, the models) run in parallel processes, each paying its own imports.
# For machines with cores to spare; on the 2-core development machine it is slower than the
# in-process job (docs/benchmarks.md, "In-process or multiprocess executor"). `vidrec pipeline
# --job refresh_everything_parallel` runs it; run config `execution: config: max_concurrent: N`
# bounds the processes (default: the CPU count).
refresh_everything_parallel = define_asset_job(
    "refresh_everything_parallel",
    selection=AssetSelection.all() - EXPERIMENTS,
    executor_def=multiprocess_executor,
    description="refresh_everything with independent steps in parallel processes (multiprocess executor).",
)
