"""Raw layer: the event logs every other asset is derived from, as the writers left them.

Raw logs are the system of record: nothing here rewrites them. The simulator, the importers, POST
/events and the service's served-impression log write them; these assets record what is there
(rows and files per table, per day for the events) so the lineage starts at the files, and the
validated layer (validated.py) judges them row by row. The catalogue (users, videos) is one
unpartitioned asset that also fills an empty home with the embedded default data; the event
tables are partitioned by day (orchestration/partitions.py).
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    multi_asset,
)

from orchestration.partitions import CATALOG_TABLES, PARTITIONED_TABLES, PARTITIONED_TAG, RAW_DAYS
from orchestration.resources import VidrecResource
from vidrec.rawlog import RawManifest
from vidrec.schema import RAW_TABLES
from vidrec.settings import VidrecSettings
from vidrec.simulator import simulate

RAW_GROUP = "raw"
RAW_ASSET_KEYS = {name: AssetKey(["raw", name]) for name in RAW_TABLES}


def ensure_raw_logs(settings: VidrecSettings) -> RawManifest:
    """The raw logs' manifest, simulating the embedded default data first on an empty home.

    Raw logs already there (`vidrec import ...`, earlier simulations) are kept: a re-run never
    overwrites the system of record.
    """
    manifest = RawManifest.read(settings.raw_dir)
    if manifest is None:
        simulate(settings)
        manifest = RawManifest.read(settings.raw_dir)
    return manifest


def _spec(name: str, **kwargs) -> AssetSpec:
    return AssetSpec(RAW_ASSET_KEYS[name], description=RAW_TABLES[name].description, group_name=RAW_GROUP,
                     kinds={"parquet"}, **kwargs)


# Unpartitioned, but single-run like the day partitions: a partition-range run of the raw and
# validated layers from the CLI (`dagster asset materialize --partition-range`, which needs every
# selected asset single-run) then takes the catalogue along, once.
@multi_asset(specs=[_spec(name) for name in CATALOG_TABLES], backfill_policy=BackfillPolicy.single_run(),
             can_subset=False)
def raw_catalog(context: AssetExecutionContext, vidrec: VidrecResource):
    """The raw users and videos under VIDREC_HOME/raw: kept when present, else simulated (with the
    events) from the seeded simulator."""
    settings = vidrec.settings()
    had_logs = RawManifest.read(settings.raw_dir) is not None
    manifest = ensure_raw_logs(settings)
    context.log.info("%s raw logs from %s under %s", "keeping" if had_logs else "simulated", manifest.source,
                     settings.raw_dir)
    for name in CATALOG_TABLES:
        files = sorted((settings.raw_dir / name).glob("*/*.parquet"))
        yield MaterializeResult(asset_key=RAW_ASSET_KEYS[name], metadata={
            "rows": sum(_row_count(path) or 0 for path in files),
            "files": len(files),
            "source": manifest.source,
            "path": str(settings.raw_dir / name),
        })


@multi_asset(
    specs=[_spec(name, deps=[RAW_ASSET_KEYS[table] for table in CATALOG_TABLES], tags=PARTITIONED_TAG)
           for name in PARTITIONED_TABLES],
    partitions_def=RAW_DAYS,
    backfill_policy=BackfillPolicy.single_run(),
    can_subset=False,
)
def raw_event_logs(context: AssetExecutionContext, vidrec: VidrecResource):
    """The raw event tables' day partitions: the files and rows each day holds (a day's files are
    whatever every writer appended to `<table>/day=YYYY-MM-DD/`)."""
    settings = vidrec.settings()
    for name in PARTITIONED_TABLES:
        for day in context.partition_keys:
            files = sorted((settings.raw_dir / name / f"day={day}").glob("*.parquet"))
            counts = [_row_count(path) for path in files]
            context.add_asset_metadata({
                "rows": sum(count or 0 for count in counts),
                "files": len(files),
                "unreadable_files": sum(count is None for count in counts),
                "path": str(settings.raw_dir / name / f"day={day}"),
            }, asset_key=RAW_ASSET_KEYS[name], partition_key=day)
        yield MaterializeResult(asset_key=RAW_ASSET_KEYS[name])


def _row_count(path: Path) -> int | None:
    """Rows in a Parquet file from its footer; None when it cannot be read (the validated layer
    quarantines it as `unreadable_file`)."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None
