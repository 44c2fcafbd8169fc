"""Sensors: react to new raw data without waiting for the nightly schedule."""


import hashlib

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from orchestration.jobs import refresh_everything
from orchestration.resources import VidrecResource
from vidrec.rawlog import MANIFEST_NAME


@sensor(
    job=refresh_everything,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Refresh everything when the raw logs' manifest changes (a new import or simulation).",
)
def raw_logs_changed(context: SensorEvaluationContext, vidrec: VidrecResource):
    manifest = vidrec.settings().raw_dir / MANIFEST_NAME
    if not manifest.exists():
        return SkipReason(f"no raw logs yet ({manifest} does not exist)")
    fingerprint = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    if context.cursor is None:
        # First evaluation: remember what is there; the pipeline that wrote it already ran.
        context.update_cursor(fingerprint)
        return SkipReason("recorded the current raw logs")
    if fingerprint == context.cursor:
        return SkipReason("raw logs unchanged")
    context.update_cursor(fingerprint)
    return RunRequest(run_key=f"raw-{fingerprint}")
