"""The `vidrec` command line: simulate data, run the pipeline, serve, ask for recommendations.

The CLI is a thin launcher. It never imports the layers above `vidrec/` (orchestration, serving):
it starts them the way an operator would, through the `dagster` and `bentoml` commands, with the
environment derived from the one settings object. That keeps the dependency arrows pointing one
way and means what the CLI runs is exactly what cron, CI or a container would run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
from pydantic import ValidationError

from vidrec.dagster_yaml import DagsterConfigError, write_dagster_yaml
from vidrec.postgres_databases import PostgresUnavailableError, ensure_databases
from vidrec.settings import VidrecSettings

REFRESH_JOB = "refresh_everything"
DEFINITIONS_MODULE = "orchestration.definitions"
# Registers the day partitions a run of the job names, and prints the run's tags (orchestration/refresh.py).
REFRESH_PREPARATION_MODULE = "orchestration.refresh"
DBT_MANIFEST_MODULE = "orchestration.dbt_manifest"  # `dbt parse` when the project changed
CLOSED_LOOP_MODULE = "orchestration.closed_loop"  # the closed-loop experiment (services, loop, report)
SERVICE_TARGET = "serving.service:RecommendationService"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _setting_problem(issue: dict) -> str:
    """One variable's problem as `VIDREC_NAME='value': why`; a rule between settings (no one
    variable to blame) as its message alone, which names the settings it relates."""
    if not issue["loc"]:
        return issue["msg"].removeprefix("Value error, ")
    name = "_".join(str(part) for part in issue["loc"]).upper()
    return f"VIDREC_{name}={issue.get('input')!r}: {issue['msg']}"


def _settings() -> VidrecSettings:
    """The settings from the environment; a bad VIDREC_* value is a usage error naming the variable."""
    try:
        return VidrecSettings()
    except ValidationError as error:
        problems = "; ".join(_setting_problem(issue) for issue in error.errors())
        raise click.UsageError(f"invalid setting(s): {problems}") from None


def _environment(settings: VidrecSettings) -> dict[str, str]:
    """The child-process environment: every layer reads the same resolved settings.

    Before any child starts, the state stores the profile needs are made ready: in production the
    PostgreSQL databases of MLflow and Dagster (created when missing), and in every profile
    DAGSTER_HOME/dagster.yaml, whose `storage` follows the profile (vidrec/dagster_yaml.py).
    """
    settings.ensure_dirs()
    try:
        if settings.profile == "production":
            for database in ensure_databases(*_production_databases(settings)):
                click.echo(f"created PostgreSQL database {database!r}")
        write_dagster_yaml(settings)
    except (PostgresUnavailableError, DagsterConfigError) as error:
        raise click.ClickException(str(error)) from None
    _prepare_dbt_manifest()
    environment = dict(os.environ)
    environment.update(
        {
            "VIDREC_HOME": str(settings.home),
            "DAGSTER_HOME": str(settings.dagster_home),
            "BENTOML_HOME": str(settings.home / "bentoml"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment


def _prepare_dbt_manifest() -> None:
    """dbt's manifest re-parsed when the dbt project changed, before anything loads the Dagster
    definitions (which refuse a stale one rather than parse while being imported)."""
    parsed = subprocess.run([sys.executable, "-m", DBT_MANIFEST_MODULE], cwd=PROJECT_ROOT)
    if parsed.returncode != 0:
        raise click.ClickException(f"`dbt parse` of {PROJECT_ROOT / 'dbt_project'} failed (exit code "
                                   f"{parsed.returncode}); see dbt's message above")


def _production_databases(settings: VidrecSettings) -> list[str]:
    """The PostgreSQL URLs the production profile keeps state in: Dagster's, and MLflow's unless
    VIDREC_MLFLOW_TRACKING_URI sends MLflow elsewhere."""
    mlflow = [] if settings.mlflow_tracking_uri_override else [settings.postgres_url]
    return [*mlflow, settings.dagster_postgres_url]


def _bin(name: str) -> str:
    """A console script of the running interpreter's environment (the project's .venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """vidrec: build, evaluate and serve two-stage video recommendations.

    Settings come from VIDREC_* environment variables (see docs/operations.md); all state lives
    under VIDREC_HOME (default ./.vidrec).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--users", type=click.IntRange(min=10), help="Number of users (default from settings: 2000).")
@click.option("--videos", type=click.IntRange(min=20), help="Number of videos (default 3000).")
@click.option("--days", type=click.IntRange(min=4), help="Number of simulated days (default 28).")
@click.option("--seed", type=int, help="Random seed (default 7).")
def simulate(users: int | None, videos: int | None, days: int | None, seed: int | None) -> None:
    """Write the seeded simulated raw logs (and their ground truth) under VIDREC_HOME/raw.

    Replaces any raw data already there, table by table and atomically.
    """
    from vidrec.simulator import SimulationConfig
    from vidrec.simulator import simulate as run_simulation

    settings = _settings()
    base = SimulationConfig.from_settings(settings)
    config = SimulationConfig(
        users=users or base.users,
        videos=videos or base.videos,
        days=days or base.days,
        seed=base.seed if seed is None else seed,
        start_date=base.start_date,
    )
    summary = run_simulation(settings, config)
    for table, rows in summary.row_counts.items():
        click.echo(f"{table:>14}: {rows:>9,} rows")
    click.echo(f"raw logs written to {settings.raw_dir}")


@main.group(name="import")
def import_dataset() -> None:
    """Import a public dataset as the raw logs under VIDREC_HOME/raw (see docs/importers.md).

    Replaces every raw table (each atomically) only after the whole dataset has been read and
    converted; a bad or incomplete dataset leaves the raw logs as they were.
    """


_LIMIT_USERS = click.option(
    "--limit-users", type=click.IntRange(min=1), help="Keep a random sample of N users (seeded) and their events."
)
_SEED = click.option("--seed", default=7, show_default=True, type=int, help="Seed of the --limit-users sample.")
_DATASET_DIR = click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))


@import_dataset.command(name="movielens")
@_DATASET_DIR
@_LIMIT_USERS
@_SEED
def import_movielens(path: Path, limit_users: int | None, seed: int) -> None:
    """Import MovieLens from PATH: ml-100k (u.data, u.item, u.user) or the CSV layout of
    ml-latest-small / ml-25m (ratings.csv, movies.csv, tags.csv)."""
    from vidrec.importers import load_movielens

    _import_with(load_movielens, path, limit_users, seed)


@import_dataset.command(name="kuairand")
@_DATASET_DIR
@_LIMIT_USERS
@_SEED
def import_kuairand(path: Path, limit_users: int | None, seed: int) -> None:
    """Import KuaiRand from PATH (or PATH/data): log_standard_*.csv, log_random_*.csv,
    user_features_*.csv, video_features_basic_*.csv."""
    from vidrec.importers import load_kuairand

    _import_with(load_kuairand, path, limit_users, seed)


def _import_with(load, path: Path, limit_users: int | None, seed: int) -> None:
    from vidrec.importers import DatasetImportError, write_imported

    settings = _settings()
    try:
        logs = load(path, limit_users=limit_users, seed=seed)
        manifest = write_imported(logs, settings.raw_dir)
    except DatasetImportError as error:
        raise click.ClickException(str(error)) from error
    for table, rows in manifest.row_counts.items():
        click.echo(f"{table:>14}: {rows:>9,} rows")
    click.echo(f"derived ({manifest.source} does not record these directly):")
    for note in manifest.notes:
        click.echo(f"  - {note}")
    click.echo(f"raw logs written to {settings.raw_dir} (source: {manifest.source}, no simulator ground truth)")


@main.command()
@click.option("--job", default=REFRESH_JOB, show_default=True, help="Dagster job to execute.")
@click.option("--days", metavar="FIRST...LAST",
              help="Re-validate only these day partitions (a backfill, e.g. 2026-01-03...2026-01-05); "
                   "everything after the validated layer rebuilds whole. Default: every day with data.")
def pipeline(job: str, days: str | None) -> None:
    """Materialize the whole asset graph headlessly (for cron and CI).

    Runs the Dagster job in-process against the instance in VIDREC_HOME/dagster, so the run and its
    asset materializations show up in the Dagster UI afterwards. The raw and validated event
    tables are partitioned by day: first `python -m orchestration.refresh` simulates the default
    data on an empty home, registers every day present and names the run's range of days; one
    run then covers the range.
    """
    settings = _settings()
    environment = _environment(settings)
    prepare = [sys.executable, "-m", REFRESH_PREPARATION_MODULE, *(["--days", days] if days else [])]
    prepared = subprocess.run(prepare, env=environment, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    if prepared.returncode != 0:
        raise click.ClickException(f"cannot prepare the run's day partitions (exit code {prepared.returncode}); "
                                   "see the log above")
    tags = prepared.stdout.strip().splitlines()[-1]
    command = [_bin("dagster"), "job", "execute", "-m", DEFINITIONS_MODULE, "-j", job, "--tags", tags]
    result = subprocess.run(command, env=environment, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise click.ClickException(f"pipeline job {job!r} failed (exit code {result.returncode}); see the log above")
    click.echo(f"pipeline job {job!r} succeeded")


@main.command("simulate-loop")
@click.option("--days", type=click.IntRange(min=1), required=True, help="Simulated days to run.")
@click.option("--policy", "policies", multiple=True, required=True, metavar="NAME",
              help="An arm's policy; give it once per arm (at least 2): "
                   "full_funnel, no_exploration, more_exploration, like_heavy, popularity_only, challenger.")
@click.option("--retrain-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Days between pipeline runs inside the loop.")
@click.option("--seed", type=int, default=0, show_default=True, help="The users' arrivals and responses.")
@click.option("--salt", default="closed-loop", show_default=True,
              help="Arm assignment hashes user ids with this: another salt re-randomises.")
@click.option("--list-length", type=click.IntRange(min=1, max=500), default=10, show_default=True,
              help="How many videos each home request asks for.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where the report goes (default VIDREC_HOME/closed_loop/<UTC time>).")
@click.option("--cold-retrains", is_flag=True,
              help="Train the in-loop retrains' ranker and candidate generator from scratch (default: "
                   "from their champions, the incremental mode).")
def simulate_loop(days: int, policies: tuple[str, ...], retrain_every: int, seed: int, salt: str,
                  list_length: int, out: Path | None, cold_retrains: bool) -> None:
    """Run a closed-loop A/B experiment on the simulated home: each day the simulator's users ask
    their arm's service (real, over HTTP) for recommendations, answer by the simulator's behaviour
    model through POST /events, and the pipeline retrains on what was logged. Writes a report with
    per-arm daily measures and logs it to MLflow. Needs `vidrec simulate` data and `vidrec pipeline`
    first."""
    settings = _settings()
    environment = _environment(settings)
    command = [sys.executable, "-m", CLOSED_LOOP_MODULE, "--days", str(days), "--retrain-every", str(retrain_every),
               "--seed", str(seed), "--salt", salt, "--list-length", str(list_length),
               *(argument for policy in policies for argument in ("--policy", policy)),
               *(["--out", str(out)] if out else []), *(["--cold-retrains"] if cold_retrains else [])]
    result = subprocess.run(command, env=environment, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise click.ClickException(f"the closed loop failed (exit code {result.returncode}); see the log above")


@main.command()
def prepare() -> None:
    """Make the profile's state stores ready, then exit: the PostgreSQL databases (production),
    DAGSTER_HOME/dagster.yaml and dbt's manifest (re-parsed when the project changed). Every other
    command does this first; run it before services started with Dagster's own commands
    (dagster-webserver, dagster-daemon), e.g. as a systemd ExecStartPre."""
    settings = _settings()
    _environment(settings)
    click.echo(f"DAGSTER_HOME={settings.dagster_home} ({settings.profile} profile)")


@main.command()
@click.option("--port", type=int, help="Port (default VIDREC_SERVE_PORT or 3000).")
def serve(port: int | None) -> None:
    """Serve the champion models with BentoML (POST /recommend, GET /healthz, GET /readyz)."""
    settings = _settings()
    port = port or settings.serve_port
    command = [_bin("bentoml"), "serve", SERVICE_TARGET, "--host", settings.serve_host, "--port", str(port)]
    _run_foreground(command, _environment(settings))


@main.command()
def ui() -> None:
    """Start the Dagster UI (webserver + daemon, so schedules and sensors run)."""
    settings = _settings()
    command = [
        _bin("dagster"), "dev", "-m", DEFINITIONS_MODULE, "-h", settings.serve_host, "-p", str(settings.ui_port)
    ]
    _run_foreground(command, _environment(settings))


@main.command()
@click.argument("user_id", type=int)
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(1, 500), help="How many videos.")
@click.option("--surface", default="home", show_default=True, type=click.Choice(["home", "watch_next", "search"]))
@click.option("--url", help="Service URL (default http://VIDREC_SERVE_HOST:VIDREC_SERVE_PORT).")
def recommend(user_id: int, k: int, surface: str, url: str | None) -> None:
    """Ask the running service for USER_ID's recommendations and print them as JSON."""
    url = url or _settings().api_url
    try:
        response = httpx.post(f"{url}/recommend", json={"user_id": user_id, "k": k, "surface": surface}, timeout=30)
    except httpx.HTTPError as error:
        raise click.ClickException(
            f"cannot reach the service at {url} ({error}); start it with `vidrec serve`"
        ) from None
    if response.status_code != 200:
        raise click.ClickException(f"service answered {response.status_code}: {response.text}")
    click.echo(json.dumps(response.json(), indent=2))


@main.command()
@click.option("--skip-pipeline", is_flag=True, help="Start the services on what is already materialized.")
def up(skip_pipeline: bool) -> None:
    """Run the pipeline, then start the API and the Dagster UI until Ctrl-C (what `make run` does)."""
    settings = _settings()
    environment = _environment(settings)
    # Ctrl-C and `kill` both stop everything this command started (a shell may have left SIGINT
    # ignored for a background job, so install the handler explicitly).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if not skip_pipeline:
        click.get_current_context().invoke(pipeline)
    processes = [
        subprocess.Popen(
            [_bin("bentoml"), "serve", SERVICE_TARGET,
             "--host", settings.serve_host, "--port", str(settings.serve_port)],
            env=environment, cwd=PROJECT_ROOT, start_new_session=True,
        ),
        subprocess.Popen(
            [_bin("dagster"), "dev", "-m", DEFINITIONS_MODULE, "-h", settings.serve_host, "-p", str(settings.ui_port)],
            env=environment, cwd=PROJECT_ROOT, start_new_session=True,
        ),
    ]
    try:
        _wait_until_ready(f"{settings.api_url}/readyz", processes)
        example_user = _example_user(settings)
        click.echo("")
        click.echo(
            f"Recommendation API: {settings.api_url}  "
            f"(Swagger UI at {settings.api_url}/, OpenAPI spec at {settings.api_url}/docs.json)"
        )
        click.echo(f"Dagster UI:         http://{settings.serve_host}:{settings.ui_port}")
        click.echo("Try:")
        click.echo(
            f"  curl -s -X POST {settings.api_url}/recommend -H 'content-type: application/json' "
            f"-d '{{\"user_id\": {example_user}, \"k\": 5, \"surface\": \"home\"}}'"
        )
        click.echo("Press Ctrl-C to stop both.")
        while all(process.poll() is None for process in processes):
            time.sleep(1)
        raise click.ClickException("a service exited unexpectedly; see its log above")
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        _stop(processes)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _example_user(settings: VidrecSettings) -> int:
    """A user id that exists in the raw logs, for the printed curl example."""
    users_dir = settings.raw_dir / "users"
    first = next(iter(sorted(users_dir.glob("day=*/*.parquet"))), None)
    if first is None:
        return 1
    import pyarrow.parquet as pq

    return int(pq.read_table(first, columns=["user_id"]).column(0)[0].as_py())


def _wait_until_ready(url: str, processes: list[subprocess.Popen], timeout_seconds: float = 180) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise click.ClickException("a service exited during start-up; see its log above")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise click.ClickException(f"the service at {url} was not ready after {timeout_seconds:.0f} s")


def _run_foreground(command: list[str], environment: dict[str, str]) -> None:
    """Run a server in its own session until it exits, or until Ctrl-C or `kill` (a service
    manager's stop) asks this command to stop it: without the SIGTERM handler, `kill` would end
    this process alone and leave the server's whole session running."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    process = subprocess.Popen(command, env=environment, cwd=PROJECT_ROOT, start_new_session=True)
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        _stop([process])
        return
    if returncode != 0:
        raise click.ClickException(f"{command[0]} exited with code {returncode}")


def _stop(processes: list[subprocess.Popen]) -> None:
    """Ask each server to shut down (it stops its own workers), then clean up its process group."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever the server left behind


if __name__ == "__main__":
    main()
