"""Feast on Spark for the distributed profile: the offline store's config and the marts as Spark sources.

The feature definitions stay those of features.py; only where their rows come from changes. dbt-spark
writes every mart as a directory of Parquet part files at the path the file sources name
(`<marts_dir>/<mart>.parquet`), so a SparkSource reads the same path with the same columns,
timestamp field and field mapping as the file source it replaces.

Imported only when the profile is distributed: the default profile must not need pyspark (the
`distributed` extra).
"""

from __future__ import annotations

from feast import FileSource
from feast.errors import FeastExtrasDependencyImportError
from feast.repo_config import FeastConfigBaseModel

from vidrec.settings import VidrecSettings

try:
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStoreConfig
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
except (ImportError, FeastExtrasDependencyImportError) as error:  # pyspark is missing
    raise RuntimeError(
        "profile 'distributed' runs Feast's Spark offline store and needs pyspark: "
        "pip install -e '.[distributed]'"
    ) from error


def spark_conf(settings: VidrecSettings) -> dict[str, str]:
    """The Spark session Feast starts in this process (point-in-time joins, materialization).

    UTC session time: the marts' timestamps are naive UTC (TIMESTAMP_NTZ in Spark) and the entity
    rows' are UTC-aware, and Spark compares the two through the session time zone.
    """
    return {
        "spark.master": settings.spark_master,
        "spark.driver.host": settings.spark_driver_host,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # progress bars would interleave with the pipeline's logs
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def spark_offline_store_config(settings: VidrecSettings) -> FeastConfigBaseModel:
    return SparkOfflineStoreConfig(type="spark", spark_conf=spark_conf(settings))


def as_spark_source(source: FileSource) -> SparkSource:
    """The same mart, read by Spark: name, path, timestamp field, mapping and description kept."""
    return SparkSource(
        name=source.name,
        path=source.path,
        file_format="parquet",
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        field_mapping=dict(source.field_mapping),
        description=source.description,
    )
