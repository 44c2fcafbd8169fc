"""Jobs: what a click, a schedule or a sensor asks Dagster to run."""

from dagster import AssetSelection, define_asset_job

refresh_everything = define_asset_job(
    "refresh_everything",
    selection=AssetSelection.all(),
    description="Raw logs → dbt → Feast → models → MLflow → champion promotion → Bento, with every check.",
)
