"""Dagster resources, all configured from the one `VidrecSettings` object.

`VidrecResource` carries the two settings that select a whole environment (home directory and
profile); everything else is derived by `VidrecSettings`, so the UI shows exactly which state a
run touches and tests point a whole run at a temporary directory with one value.
"""


import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource

from orchestration.dbt_manifest import DBT_PROJECT_DIR
from vidrec.settings import VidrecSettings

MLFLOW_EXPERIMENT = "vidrec"
# The output of dbt_project/profiles.yml each settings profile builds the warehouse with.
DBT_TARGETS = {"default": "dev", "production": "dev", "distributed": "distributed"}


def dbt_vars(settings: VidrecSettings) -> dict:
    """The `--vars` every dbt build gets: where the validated layer and the marts are, and the
    settings the models read."""
    return {
        "validated_dir": str(settings.validated_dir),
        "marts_dir": str(settings.marts_dir),
        "holdout_days": settings.holdout_days,
        "history_length": settings.history_length,
        "impression_history_length": settings.impression_history_length,
        "max_examples_per_user": settings.max_examples_per_user,
    }


# Settings the resource never carries: secrets would show in the UI's resource config, and the
# API key is the service's, not the pipeline's (they stay in the environment).
_SECRET_SETTINGS = frozenset({"api_key"})


class VidrecResource(ConfigurableResource):
    """The deployment's settings, whole: where its state lives (VIDREC_HOME), which profile it
    runs, and every other setting as `build_definitions(settings)` was given it.

    Assets read settings only through `settings()`, so a Definitions object built from a
    settings object runs with exactly those settings, whatever the environment of the process
    that executes the run; the Dagster UI shows them all as the resource's config. Secrets are
    left out (they stay in the environment). Built with only `home` (sensor tests do), the other
    settings come from the environment.
    """

    home: str
    profile: str = "default"
    # Every other non-secret setting as JSON (VidrecSettings' field aliases as keys); empty:
    # read them from the environment.
    settings_json: str = ""

    @classmethod
    def from_settings(cls, settings: VidrecSettings) -> "VidrecResource":
        carried = settings.model_dump(mode="json", by_alias=True, exclude=set(_SECRET_SETTINGS) | {"home", "profile"})
        return cls(home=str(settings.home), profile=settings.profile, settings_json=json.dumps(carried, sort_keys=True))

    def settings(self) -> VidrecSettings:
        carried = json.loads(self.settings_json) if self.settings_json else {}
        settings = VidrecSettings(**carried, home=Path(self.home), profile=self.profile)
        settings.ensure_dirs()
        return settings


class MlflowResource(ConfigurableResource):
    """MLflow tracking + registry at the settings' URI, one experiment for the whole pipeline."""

    tracking_uri: str
    artifact_location: str
    experiment_name: str = MLFLOW_EXPERIMENT

    def configure(self) -> str:
        """Point the MLflow client at this deployment; returns the experiment id."""
        mlflow.set_tracking_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return mlflow.create_experiment(self.experiment_name, artifact_location=self.artifact_location)
        return experiment.experiment_id

    @contextmanager
    def start_run(self, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
        experiment_id = self.configure()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            yield run


def build_resources(settings: VidrecSettings) -> dict[str, object]:
    """The resource set for a deployment described by `settings` (definitions and tests use it)."""
    return {
        "vidrec": VidrecResource.from_settings(settings),
        "mlflow_tracking": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri, artifact_location=settings.mlflow_artifact_location
        ),
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR),
            profiles_dir=str(DBT_PROJECT_DIR),
            target=DBT_TARGETS[settings.profile],
            # The dbt of this interpreter's environment: PATH need not include the virtualenv.
            dbt_executable=str(Path(sys.executable).parent / "dbt"),
        ),
    }
