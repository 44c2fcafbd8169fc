"""Raw layer: the event logs every other asset is derived from.

One multi-asset owns the six raw tables because they are produced together (by the simulator or an
importer) and must stay mutually consistent. Their asset keys (`raw/<table>`) are the keys
dagster-dbt gives the dbt sources of the same names, so the lineage graph connects by itself.
"""


from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from orchestration.resources import VidrecResource
from vidrec.rawlog import RawManifest
from vidrec.schema import RAW_TABLES
from vidrec.simulator import simulate

RAW_GROUP = "raw"
RAW_ASSET_KEYS = {name: AssetKey(["raw", name]) for name in RAW_TABLES}


@multi_asset(
    specs=[
        AssetSpec(key, description=RAW_TABLES[name].description, group_name=RAW_GROUP, kinds={"parquet"})
        for name, key in RAW_ASSET_KEYS.items()
    ],
    can_subset=False,
)
def raw_event_logs(context: AssetExecutionContext, vidrec: VidrecResource):
    """Raw logs under VIDREC_HOME/raw: kept as they are when present, else simulated.

    Raw logs are the system of record, so a re-run never overwrites them (idempotent): imported
    data (`vidrec import ...`) or earlier simulations stay. An empty home gets the embedded
    default data from the seeded simulator.
    """
    settings = vidrec.settings()
    manifest = RawManifest.read(settings.raw_dir)
    if manifest is None:
        context.log.info("no raw logs under %s: simulating the embedded default data", settings.raw_dir)
        simulate(settings)
        manifest = RawManifest.read(settings.raw_dir)
    else:
        context.log.info("keeping existing raw logs from %s under %s", manifest.source, settings.raw_dir)
    for name, key in RAW_ASSET_KEYS.items():
        yield MaterializeResult(
            asset_key=key,
            metadata={
                "rows": manifest.row_counts.get(name, 0),
                "source": manifest.source,
                "path": str(settings.raw_dir / name),
            },
        )
