"""Sensors: react to new raw data without waiting for the nightly schedule.

A refresh re-validates only the day partitions whose raw files changed (orchestration/refresh.py);
the unpartitioned assets after the validated layer (dbt, Feast, models) rebuild whole.
"""

import hashlib
import json
from dataclasses import asdict, dataclass

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.jobs import refresh_everything
from orchestration.refresh import changed_days_tags
from orchestration.resources import VidrecResource
from serving.events.state import committed_batches
from vidrec.rawlog import MANIFEST_NAME

UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED]


@dataclass(frozen=True)
class RawLogState:
    """What the sensor last acted on: the manifest's fingerprint (imports, simulations) and the
    last committed batch of the event intake's appends (POST /events and served impressions,
    which leave the manifest alone)."""

    manifest: str
    events_seq: int = 0

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, cursor: str, events_seq_now: int) -> "RawLogState":
        """A cursor written before events were tracked was a bare fingerprint: events already
        there count as seen (the runs since read them)."""
        try:
            return cls(**json.loads(cursor))
        except (ValueError, TypeError):
            return cls(cursor, events_seq_now)


@sensor(
    job=refresh_everything,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Refresh everything when the raw logs change: a new import or simulation (the manifest), "
    "or at least VIDREC_EVENTS_MIN_FOR_RUN events appended through the event intake (POST /events, and "
    "the service's own log of the impressions it served). The run re-validates the day partitions whose "
    "raw files changed (new days are registered). While a refresh runs, new events wait for the next "
    "evaluation after it.",
)
def raw_logs_changed(context: SensorEvaluationContext, vidrec: VidrecResource):
    settings = vidrec.settings()
    manifest = settings.raw_dir / MANIFEST_NAME
    if not manifest.exists():
        return SkipReason(f"no raw logs yet ({manifest} does not exist)")
    fingerprint = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    batches = committed_batches(settings.raw_dir)
    events_seq = batches[-1].seq if batches else 0
    if context.cursor is None:
        # First evaluation: remember what is there; the pipeline that wrote it already ran.
        context.update_cursor(RawLogState(fingerprint, events_seq).encode())
        return SkipReason("recorded the current raw logs")
    seen = RawLogState.decode(context.cursor, events_seq)
    new_events = sum(batch.accepted for batch in batches if batch.seq > seen.events_seq)
    if fingerprint == seen.manifest and new_events < settings.events_min_for_run:
        return SkipReason(f"raw logs unchanged ({new_events} new events, a run needs {settings.events_min_for_run})")
    running = context.instance.get_runs(RunsFilter(job_name=refresh_everything.name, statuses=UNFINISHED), limit=1)
    if running:
        return SkipReason(f"a refresh is running ({running[0].run_id}); the changes wait for the next evaluation")
    days, tags = changed_days_tags(settings, context.instance)
    context.update_cursor(RawLogState(fingerprint, events_seq).encode())
    if not days:
        return SkipReason("the raw logs changed, but no day partition differs from what was validated")
    context.log.info("requesting a refresh re-validating %s day(s): %s", len(days), ", ".join(days))
    return RunRequest(run_key=f"raw-{fingerprint}-events-{events_seq}", tags=tags)
