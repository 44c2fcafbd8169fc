"""The Feast store of a VidrecSettings: configuration, definitions and apply, all in code.

Everything is built from the settings (marts under `settings.marts_dir`, registry and SQLite
online store under `settings.feast_dir`), so pointing VIDREC_HOME elsewhere moves the whole store
and no path is hard-coded. `feature_store.yaml` next to this module mirrors this for CLI users.

Offline store: Feast's duckdb store (point-in-time joins run in DuckDB, over the mart files;
`feature_repo/training_frames.py` says what it expects of entity rows), in every profile but the
distributed one, which joins on Spark (`feature_repo/spark_store.py`).

Loading the online store: the marts' timestamps are those of the logs (simulated days may lie in
the past), so use `store.materialize(start, end)` over the marts' event-time range. A first
`materialize_incremental(end)` starts at *wall-clock now* - ttl and would skip past daily
snapshots; later calls continue from the previous end, as expected.
"""

from __future__ import annotations

import atexit
import logging
import sys
import warnings
from urllib.parse import urlsplit

from feast import FeatureStore, RepoConfig
from feast.errors import FeastExtrasDependencyImportError
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import FeastConfigBaseModel, RegistryConfig

from feature_repo.entities import ENTITIES
from feature_repo.features import feature_views
from feature_repo.services import feature_services
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

PROJECT = "vidrec"

# Known noise of the duckdb offline store's pins (pyproject.toml; docs/operations.md "Why these
# pins"), silenced by exact text and nothing else; drop each with its pin:
# - sqlglot 29 with its Rust tokenizer (`sqlglot[rs]`; 30's compiled one breaks ibis) warns once per
#   process, at import, that sqlglot[rs] is deprecated (a UserWarning, and the sqlglotrs package's
#   own DeprecationWarning);
# - ibis 12 calls duckdb 2.0's deprecated `fetch_arrow_table()` on every query.
# Feast shows every DeprecationWarning once (it sets that filter when imported), so these reached
# `vidrec pipeline`'s output. vidrec's processes import this module before sqlglot (Dagster's
# definitions reach it before dagster-dbt; the store's import is in `_offline_store_config`), so the
# filters are in place first. pytest resets filters for each test: the same texts belong in
# pyproject.toml's filterwarnings.
warnings.filterwarnings("ignore", message=r"sqlglot\[rs\] is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r"sqlglotrs is deprecated", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated", category=DeprecationWarning)


@atexit.register
def _close_ibis_default_backend() -> None:
    """Let go of ibis's default DuckDB connection (the duckdb store's) before the interpreter
    tears modules down. Held to the end, it outlives duckdb's own module, whose bindings then
    print some 40 lines of "nanobind: leaked instance ..." as every such process exits."""
    ibis = sys.modules.get("ibis")
    if ibis is not None:
        ibis.options.default_backend = None


def redis_connection_string(redis_url: str) -> str:
    """`redis://[:password@]host:port/N` as Feast's `host:port,db=N[,password=...]` form."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"redis_url {redis_url!r} is not a redis://host:port/db URL")
    database = parts.path.lstrip("/") or "0"
    options = [f"{parts.hostname}:{parts.port or 6379}", f"db={database}"]
    if parts.password:
        options.append(f"password={parts.password}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return ",".join(options)


def _redis_online_store_config(redis_url: str) -> FeastConfigBaseModel:
    # imported here: the default profile must not need the redis client (feast[redis])
    try:
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    except FeastExtrasDependencyImportError as error:
        raise RuntimeError(
            "profile 'production' keeps online features in Redis and needs the redis client: "
            "pip install 'feast[redis]'"
        ) from error
    # skip_dedup: write every materialized row as it comes. By default Feast's Redis store skips a
    # row no newer than the one it holds, so after a corrected or removed raw file a whole load
    # could never replace an entity's vanished newest row with its new latest one. Nothing here
    # needs the check: only `materialize` writes (one process at a time, one latest row per
    # entity in its range), a whole load writes every entity's latest row, and an incremental
    # load's range starts where rows can only have been added, so its rows are never older than
    # the stored ones (orchestration/incremental_online.py).
    return RedisOnlineStoreConfig(connection_string=redis_connection_string(redis_url), skip_dedup=True)


def build_repo_config(settings: VidrecSettings) -> RepoConfig:
    """Feast config: duckdb offline store over the marts (Spark's in the distributed profile);
    SQLite online store, Redis in production."""
    if settings.profile == "production":
        online_store = _redis_online_store_config(settings.redis_url)
    else:
        online_store = SqliteOnlineStoreConfig(path=str(settings.feast_dir / "online_store.db"))
    return RepoConfig(
        project=PROJECT,
        provider="local",
        registry=RegistryConfig(path=str(settings.feast_dir / "registry.db"), cache_ttl_seconds=60),
        offline_store=_offline_store_config(settings),
        online_store=online_store,
        entity_key_serialization_version=3,
        repo_path=settings.feast_dir,
    )


def _offline_store_config(settings: VidrecSettings) -> FeastConfigBaseModel:
    if settings.profile == "distributed":  # Spark (needs the `distributed` extra)
        from feature_repo.spark_store import spark_offline_store_config

        return spark_offline_store_config(settings)
    # imported here, after the warning filters above: it brings in ibis and sqlglot
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

    return DuckDBOfflineStoreConfig()


def feature_store(settings: VidrecSettings) -> FeatureStore:
    """A FeatureStore over the settings' registry (apply definitions first, once)."""
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=build_repo_config(settings), repo_path=str(settings.feast_dir))


def feature_definitions(settings: VidrecSettings) -> list:
    """Entities, feature views and feature services, reading the settings' marts."""
    views = feature_views(settings.marts_dir, on_spark=settings.profile == "distributed")
    return [*ENTITIES, *views.values(), *feature_services(views).values()]


def apply_feature_definitions(settings: VidrecSettings) -> FeatureStore:
    """Register every definition (idempotent: applying twice leaves the registry unchanged)."""
    store = feature_store(settings)
    definitions = feature_definitions(settings)
    store.apply(definitions)
    logger.info("applied %d Feast definitions to %s", len(definitions), settings.feast_dir / "registry.db")
    return store
