"""One typed settings object for the whole platform.

Every path, URI and tunable that more than one layer needs is read here, from `VIDREC_*`
environment variables with embedded defaults, so the default profile runs on a bare machine with
nothing but local files (DuckDB, SQLite, Parquet), the production profile swaps in PostgreSQL
and Redis, and the distributed profile builds the marts and training frames on Spark, without any
other code knowing.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class VidrecSettings(BaseSettings):
    """Where everything lives and how big the default data is.

    Derived locations (raw logs, marts, Feast, MLflow, Dagster) sit under `home` unless overridden,
    so pointing `VIDREC_HOME` at a temporary directory isolates a whole pipeline run (tests do).
    """

    model_config = SettingsConfigDict(env_prefix="VIDREC_", extra="ignore", frozen=True)

    profile: Literal["default", "production", "distributed"] = Field(
        "default",
        description=(
            "default: embedded DuckDB/SQLite/local files; production: PostgreSQL + Redis; "
            "distributed: the default profile with dbt-spark marts and Feast's Spark offline store."
        ),
    )
    home: Path = Field(Path(".vidrec"), description="Root directory of all generated state.")

    # Simulation (the embedded default data).
    sim_users: int = Field(2000, ge=10)
    sim_videos: int = Field(3000, ge=20)
    sim_days: int = Field(28, ge=4)
    sim_seed: int = 7
    sim_start_date: str = "2026-01-01"

    # dbt's DuckDB: the most memory one build may hold before it spills to disk (DuckDB's own
    # default is 80% of the machine, which a 10x-default build reached: 11 GB; docs/benchmarks.md).
    duckdb_memory_limit: str = Field("4GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")

    # Evaluation protocol: the last `holdout_days` days of events are the temporal holdout.
    holdout_days: int = Field(3, ge=1)
    # Rollback examples kept per user (Covington et al.: equal weight per user).
    max_examples_per_user: int = Field(60, ge=1)
    history_length: int = Field(50, ge=1)
    # Impressions kept in the ranker's engagement log (churn: shown again without a click).
    impression_history_length: int = Field(100, ge=1)
    # Share of non-clicked training impressions kept in the ranking frame (clicks and the holdout
    # are all kept; kept non-clicks get weight 1/rate): keeps the ranker's training small (the
    # duckdb offline store joins the whole default frame in about 20 s; the rate is for training).
    ranking_negative_sample_rate: float = Field(0.1, gt=0, le=1)
    # Incremental training frames: the ranking frame's feature values of rows stamped before the
    # first day whose validated data changed are reused from the last run, and only the rest is
    # asked of Feast (orchestration/incremental_frames.py). Off: every run joins the whole frame.
    incremental_frames: bool = True
    # Incremental marts: dbt's incremental models recompute only the rows from the first day whose
    # validated data changed (orchestration/incremental_dbt.py), and the online store loads only
    # the new days (orchestration/assets/features.py). Off: every build refreshes them fully.
    incremental_marts: bool = True
    # Incremental retrains: the ranker and the candidate generator start from their champion's
    # weights and train their config's `warm_start_epochs` instead of `epochs` (models/warm_start.py).
    # Off: every run trains from scratch, as the benchmarks' figures were measured. The closed loop
    # turns it on for its daily retrains; a daily schedule in production would too.
    warm_start: bool = False

    # Serving.
    serve_host: str = "127.0.0.1"
    serve_port: int = 3000
    ui_port: int = 3001
    # Candidates ranked per request: every fitted retrieval source's quota, ANN filling the rest.
    candidates_per_request: int = Field(200, ge=1)
    # On surface watch_next with a seed video, the share of those candidates that the seed's
    # co-watch neighbours and nearest videos by embedding take; the user's own sources fill the rest.
    watch_next_seed_share: float = Field(0.5, ge=0, le=1)
    # Video features are daily aggregates: serving keeps them in-process this long, re-reading
    # them in the background over each half TTL (at 100k videos a re-read costs ~10 s of CPU).
    video_feature_ttl_seconds: float = Field(1800.0, ge=0)
    # BentoML worker processes of `vidrec serve` (each loads the models and polls the registry).
    serve_workers: int = Field(1, ge=1)
    # BentoML's access log: one formatted line per request (a few % of a core at 100 requests/s).
    serve_access_log: bool = True
    # How often serving checks whether a `champion` alias moved (0: never; restart to reload).
    model_poll_seconds: float = Field(10.0, ge=0)
    # How often each worker looks for new files in the raw log's videos table (serving/uploads):
    # videos its index lacks are embedded by the champion's video tower and served without a
    # retrain (0: never; they wait for the next pipeline run).
    uploads_poll_seconds: float = Field(5.0, ge=0)
    # Per-stage time budgets of a request (seconds); past one, the stage falls back (see
    # serving.recommender): online-store reads are abandoned, compute stages are counted.
    budget_user_features_seconds: float = Field(0.05, gt=0)
    budget_retrieval_seconds: float = Field(0.02, gt=0)
    budget_candidate_features_seconds: float = Field(0.05, gt=0)
    budget_ranking_seconds: float = Field(0.05, gt=0)
    budget_policy_seconds: float = Field(0.02, gt=0)
    # Users whose last successfully read features a worker keeps for when the online store fails.
    last_known_users: int = Field(10_000, ge=0)
    # What "now" is for request-time features (days since the user last watched a creator, ...):
    # "wall" = the system clock; "data" = the end of the online store's last materialization, for
    # logs that lie in the past (the embedded simulated data). Unset: "data" in the default
    # profile, "wall" in production.
    serving_clock: Literal["wall", "data"] | None = None
    # API hardening (serving/api_guard.py): the largest request body any route reads, and the key
    # that routes which write or administer (/events, /admin/...) require when set.
    api_max_body_bytes: int = Field(1_048_576, ge=1)
    api_key: SecretStr | None = Field(None, description="Unset: write/admin routes are open (local use).")
    # POST /events (serving/events/intake.py): each worker refuses a request (429) once this many
    # events wait to be written, so a stalled disk fills no memory; a request that cannot start
    # writing within the lock wait gets 503; both answers tell the client to retry after the given
    # seconds. The bound is at least 1000 so a full batch (1000 events) is never refused forever.
    events_max_pending: int = Field(20_000, ge=1000)
    events_lock_wait_seconds: float = Field(5.0, gt=0)
    events_retry_after_seconds: int = Field(1, ge=1)
    # New events appended through the event intake (POST /events and the served-impression log
    # below: a served item counts as one) that make the raw-log sensor start a refresh (a whole
    # refresh takes minutes: not one per event).
    events_min_for_run: int = Field(1000, ge=1)
    # The served-impression log (serving/served_log/): each worker appends every item /recommend
    # serves to the raw log's impressions, in the background, through the event intake (same
    # lock, files and dedupe as POST /events). It holds at most `served_log_max_pending` rows
    # waiting to be written (past that, new answers are dropped and counted, never waited for) and
    # writes every `served_log_flush_seconds`: one file per worker, day and flush, so a longer
    # interval means fewer, larger files, and more rows lost if the process is killed outright.
    served_log_enabled: bool = True
    served_log_max_pending: int = Field(50_000, ge=1)
    served_log_flush_seconds: float = Field(5.0, gt=0)
    # The served-feature log (serving/served_log/feature_log.py): for this share of ranked
    # requests (chosen by a hash of the request id, so every worker and every re-run agrees) the
    # ranker's input values of each served item are written, in the background and within the
    # same bound and flush interval as the impressions, to Parquet under `served_features_dir`
    # (one directory per request day). 0 switches it off.
    served_features_sample_share: float = Field(0.1, ge=0, le=1)
    served_features_dir_override: Path | None = Field(None, alias="VIDREC_SERVED_FEATURES_DIR")
    # Days of the served-feature log kept, counted back from its newest day: the Dagster job
    # `prune_served_feature_log` (daily at 04:00 UTC) removes older `day=` directories. At least
    # the skew checks' window (below), which reads nothing older.
    served_features_retention_days: int = Field(30, ge=1)

    # Skew on served features, the promotion gate (orchestration/assets/served_skew.py): the
    # served-feature log of the last `served_skew_window_days` days (counted back from its newest
    # request) is recomputed offline at each request's time. A numeric value matches within
    # `served_skew_abs_tolerance` + `served_skew_rel_tolerance` × |offline| (NaN matches NaN);
    # categories and bags (lists) must be equal. A feature fails when more than
    # `served_skew_max_mismatch_rate` of its values differ. Drift against the last ranking
    # training frame fails on PSI above `served_skew_max_psi`, a KS statistic (numeric features)
    # above `served_skew_max_ks`, or a null-rate gap above `served_skew_max_null_rate_gap`; it
    # is judged only from `served_skew_min_rows` served rows on (fewer pass, saying so). The drift
    # thresholds are far above PSI's rule of thumb (0.2) on purpose: the two sides are different
    # populations (what the logging policy showed vs what the ranker and policy choose to serve,
    # which moves duration, engagement and recency features a lot: PSI up to 1.5 and KS up to 0.42
    # on the tiny simulated pipeline with no fault; on the default data, the first day a loop's
    # ranker chose what was served, PSI 2.60 on user_category_days_since_watch, KS 0.46), so drift
    # catches gross shifts (a unit error gives PSI ~7, KS ~0.9; a feature stuck at one value); the
    # row-by-row match is the exact test.
    served_skew_window_days: float = Field(7.0, gt=0)
    served_skew_abs_tolerance: float = Field(1e-6, ge=0)
    served_skew_rel_tolerance: float = Field(1e-4, ge=0)
    served_skew_max_mismatch_rate: float = Field(0.01, ge=0, le=1)
    served_skew_max_psi: float = Field(4.0, gt=0)
    served_skew_max_ks: float = Field(0.6, gt=0, le=1)
    served_skew_max_null_rate_gap: float = Field(0.5, ge=0, le=1)
    served_skew_min_rows: int = Field(200, ge=1)

    # The validated layer (orchestration/assets/validated.py): row-level rules on raw events
    # (expectations/row_rules.py) send failing rows to VIDREC_HOME/quarantine, clean rows to
    # VIDREC_HOME/validated, which dbt reads. A watch longer than `quarantine_max_watch_ratio` ×
    # its video's duration is quarantined (rewatches and loops make a few durations plausible).
    # Each validated table's check fails when more than `quarantine_tolerated_share` of the rows
    # it validated in a run were quarantined: at `quarantine_severity` "block" an ERROR that stops
    # everything downstream in the run, at "warn" a WARN that lets the clean rows flow on.
    quarantine_severity: Literal["block", "warn"] = "block"
    quarantine_tolerated_share: float = Field(0.01, ge=0, le=1)
    quarantine_max_watch_ratio: float = Field(3.0, gt=0)

    # Re-ranking policy after the ranker (serving/policy/config.py documents each knob).
    policy_max_per_creator: int = Field(2, ge=1)
    policy_separate_adjacent_creators: bool = True
    policy_diversity_lambda: float = Field(0.8, ge=0, le=1)
    policy_diversity_similarity: Literal["category", "embedding"] = "category"
    policy_watched_fraction_threshold: float = Field(0.8, ge=0, le=1)
    policy_fresh_upload_hours: float = Field(48.0, ge=0)
    policy_fresh_subscription_boost: float = Field(0.2, ge=0)
    policy_exploration_share: float = Field(0.03, ge=0, le=1)
    policy_exploration_seed: int | None = None
    policy_item_to_item_sources: tuple[str, ...] = ("co_watch",)
    policy_trending_sources: tuple[str, ...] = ("trending", "popular")
    policy_blocklist_path: Path | None = None
    # The registry alias whose versions serving loads and follows: "champion", or "challenger"
    # (each run's candidates that passed the promotion gates, promoted or not: an A/B arm for the
    # newest models). A model without the alias serves its champion.
    serving_model_alias: str = Field("champion", pattern=r"^[a-z][a-z0-9_-]*$")
    # What orders a known user's home list: "two_stage" (retrieval sources, then the ranker) or
    # "popularity" (what their demographic segment watches, as a new user gets, through the same
    # policy stage and exploration): the popularity-only arm of an A/B test, or a way to keep
    # serving while the models are suspect.
    serving_funnel: Literal["two_stage", "popularity"] = "two_stage"
    # The final score's head weights at serving, as JSON (e.g. {"watch_time": 1, "like": 60,
    # "skip": -30}): replaces the champion ranker's RankerConfig.score_weights when it loads
    # (None: the model's own). A head the ranker lacks fails the load, naming it.
    serving_score_weights: dict[str, float] | None = None

    # Production profile endpoints (only read when profile == "production"). MLflow keeps its runs
    # and registry in postgres_url's database, Dagster its runs, event logs and schedules in
    # `dagster_postgres_url` on the same server; `vidrec` commands create either when missing.
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/vidrec"
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Distributed profile (only read when profile == "distributed"): the Spark master of dbt's
    # session and of Feast's Spark offline store (local[N], spark://host:7077, yarn, ...). dbt's
    # profile reads the same VIDREC_SPARK_* variables (dbt_project/profiles.yml), so set them in
    # the environment, not only on a settings object.
    spark_master: str = "local[2]"
    # The address Spark's executors reach the driver at: loopback for local[N]; on a cluster, this
    # machine's address on the cluster's network.
    spark_driver_host: str = "127.0.0.1"

    # Optional explicit overrides.
    mlflow_tracking_uri_override: str | None = Field(None, alias="VIDREC_MLFLOW_TRACKING_URI")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_api_key_is_unset(cls, api_key: object) -> object:
        return None if api_key == "" else api_key

    @field_validator("postgres_url")
    @classmethod
    def _postgres_url_names_a_database(cls, postgres_url: str) -> str:
        parts = urlsplit(postgres_url)
        if parts.scheme != "postgresql" or not parts.hostname or not parts.path.strip("/"):
            raise ValueError(
                f"expected postgresql://user[:password]@host[:port]/database, got {postgres_url!r}"
            )
        return postgres_url

    @model_validator(mode="after")
    def _served_feature_retention_covers_the_skew_window(self) -> VidrecSettings:
        if self.served_features_retention_days < math.ceil(self.served_skew_window_days):
            raise ValueError(
                f"VIDREC_SERVED_FEATURES_RETENTION_DAYS ({self.served_features_retention_days}) is shorter than "
                f"VIDREC_SERVED_SKEW_WINDOW_DAYS ({self.served_skew_window_days:g}): pruning would delete days the "
                "served-feature skew checks read; keep at least the window"
            )
        return self

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    # ---- derived locations -------------------------------------------------------------
    @cached_property
    def raw_dir(self) -> Path:
        """Raw event logs: `<table>/day=YYYY-MM-DD/part-0.parquet`."""
        return self.home / "raw"

    @cached_property
    def validated_dir(self) -> Path:
        """Raw rows that passed the row rules, typed: `<table>/day=YYYY-MM-DD/part-0.parquet`
        (what dbt's sources read)."""
        return self.home / "validated"

    @cached_property
    def quarantine_dir(self) -> Path:
        """Raw rows that failed a row rule, with every reason and their source file, same layout."""
        return self.home / "quarantine"

    @cached_property
    def ground_truth_dir(self) -> Path:
        """The simulator's hidden truth (latent tastes), never read by training."""
        return self.home / "ground_truth"

    @cached_property
    def warehouse_path(self) -> Path:
        """dbt's warehouse: a DuckDB file, or in the distributed profile Spark's warehouse
        directory (its tables and the Derby metastore that names them)."""
        if self.profile == "distributed":
            return self.home / "spark_warehouse"
        return self.home / "warehouse.duckdb"

    @cached_property
    def marts_dir(self) -> Path:
        """dbt's external marts (Parquet), the hand-off to Feast file sources."""
        return self.home / "marts"

    @cached_property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @cached_property
    def served_features_dir(self) -> Path:
        """The served-feature log: what the ranker was fed for sampled requests, by request day
        (not raw events: the pipeline's raw layer never reads it)."""
        return self.served_features_dir_override or self.home / "served_features"

    @cached_property
    def artifacts_dir(self) -> Path:
        """Working copies of model bundles and indexes before they go to MLflow."""
        return self.home / "artifacts"

    @cached_property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @cached_property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @cached_property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri_override:
            return self.mlflow_tracking_uri_override
        if self.profile == "production":
            return self.postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @cached_property
    def dagster_postgres_url(self) -> str:
        """Dagster's instance storage in the production profile: a database of its own beside
        MLflow's, `<database>_dagster` on postgres_url's server. Not one database for both: each
        keeps its schema version in a table named `alembic_version`, which one schema holds once."""
        parts = urlsplit(self.postgres_url)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_dagster"))

    @cached_property
    def mlflow_artifact_location(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def effective_serving_clock(self) -> Literal["wall", "data"]:
        if self.serving_clock is not None:
            return self.serving_clock
        return "wall" if self.profile == "production" else "data"

    @property
    def api_url(self) -> str:
        return f"http://{self.serve_host}:{self.serve_port}"

    def ensure_dirs(self) -> None:
        """Create every local directory the pipeline writes into (idempotent)."""
        for path in (
            self.raw_dir,
            self.ground_truth_dir,
            self.marts_dir,
            self.feast_dir,
            self.artifacts_dir,
            self.dagster_home,
            self.mlflow_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: object) -> VidrecSettings:
    """Read settings from the environment, with explicit overrides winning (used by tests)."""
    return VidrecSettings(**overrides)
