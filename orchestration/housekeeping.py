"""Housekeeping: jobs that keep the deployment's own logs bounded, with their schedules.

They are op jobs, not assets: what they produce is space on disk, not data anything depends on,
and a run of one should not appear as a materialization in any asset's lineage. The served-feature
log is the one log here that grows with traffic and that no pipeline input reads (the raw log,
which the served-impression log appends to, is the system of record and is never pruned).
"""

from dagster import DefaultScheduleStatus, OpExecutionContext, Output, ScheduleDefinition, job, op

from orchestration.resources import VidrecResource
from serving.served_log.feature_retention import prune_served_feature_log as prune_log


@op(description="Remove the served-feature log's day directories older than VIDREC_SERVED_FEATURES_RETENTION_DAYS, "
                "counted back from its newest day.")
def prune_served_feature_days(context: OpExecutionContext, vidrec: VidrecResource) -> Output[None]:
    settings = vidrec.settings()
    pruned = prune_log(settings.served_features_dir, settings.served_features_retention_days)
    if pruned.unrecognised:
        context.log.warning("left alone in %s (not a day=YYYY-MM-DD directory): %s", settings.served_features_dir,
                            ", ".join(pruned.unrecognised))
    context.log.info("removed %d day(s), %d file(s); kept %d day(s) from %s", len(pruned.removed_days),
                     pruned.removed_files, pruned.kept_days, pruned.first_kept_day or "—")
    return Output(None, metadata={
        "directory": str(settings.served_features_dir),
        "retention_days": settings.served_features_retention_days,
        "newest_day": pruned.newest_day or "nothing logged",
        "first_kept_day": pruned.first_kept_day or "nothing logged",
        "removed_days": len(pruned.removed_days),
        "removed_day_names": ", ".join(pruned.removed_days) or "none",
        "removed_files": pruned.removed_files,
        "removed_bytes": pruned.removed_bytes,
        "kept_days": pruned.kept_days,
        "unrecognised_entries": ", ".join(pruned.unrecognised) or "none",
    })


@job(description="Keep the served-feature log to its retention window (VIDREC_SERVED_FEATURES_RETENTION_DAYS, "
                 "default 30 days back from its newest day); the skew checks read only the last "
                 "VIDREC_SERVED_SKEW_WINDOW_DAYS.")
def prune_served_feature_log():
    prune_served_feature_days()


daily_served_feature_pruning = ScheduleDefinition(
    name="daily_served_feature_pruning",
    job=prune_served_feature_log,
    cron_schedule="0 4 * * *",  # after the 03:00 retrain, whose skew checks read the log
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Prune the served-feature log to its retention window at 04:00 UTC.",
)
