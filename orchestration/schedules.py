"""Schedules: the daily retrain."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.jobs import refresh_everything

daily_retrain = ScheduleDefinition(
    name="daily_retrain",
    job=refresh_everything,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Rebuild features and retrain every model at 03:00 UTC; champions move only if better.",
)
