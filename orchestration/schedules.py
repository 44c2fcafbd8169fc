"""Schedules: the daily retrain."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from orchestration.jobs import refresh_everything
from orchestration.partitions import RAW_DAYS, range_tags
from orchestration.refresh import changed_days_tags
from orchestration.resources import VidrecResource


@schedule(
    name="daily_retrain",
    job=refresh_everything,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Rebuild features and retrain every model at 03:00 UTC; champions move only if better. "
                "Re-validates the days whose raw files changed, else the newest day (a run of the job names "
                "a day partition; judging an unchanged day again rewrites nothing).",
)
def daily_retrain(context: ScheduleEvaluationContext, vidrec: VidrecResource):
    settings = vidrec.settings()
    days, tags = changed_days_tags(settings, context.instance)
    if not days:
        known = context.instance.get_dynamic_partitions(RAW_DAYS.name)
        if not known:
            return SkipReason("no day partition yet: run `vidrec pipeline` once to build the raw and validated layers")
        tags = range_tags(context.instance, [max(known)])
    return RunRequest(tags=tags)
