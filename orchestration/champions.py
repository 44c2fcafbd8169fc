"""The current champion of a model, loaded by the asset that trains its successor.

The asset needs it twice: to start from (a warm start, orchestration/warm_starts.py) and to be
scored on the very holdout the candidate is scored on, so that promotion compares two numbers
from the same rows (models/registry.py::is_better_than_champion says why the champion's own tag
does not do once the holdout window moves).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from mlflow import MlflowClient

from models.registry import ChampionRescored, RegisteredArtifact, champion_version, download_version

logger = logging.getLogger(__name__)

Bundle = TypeVar("Bundle")


@dataclass(frozen=True)
class Champion(Generic[Bundle]):
    version: str
    bundle: Bundle


def load_champion(artifact: RegisteredArtifact, load: Callable[[Path], Bundle]) -> Champion[Bundle] | None:
    """The champion of `artifact` loaded by `load`, or None when there is none yet. The MLflow
    client must already point at the deployment (MlflowResource.configure)."""
    version = champion_version(MlflowClient(), artifact)
    if version is None:
        return None
    with tempfile.TemporaryDirectory(prefix="vidrec-champion-") as directory:
        return Champion(version, load(download_version(artifact, version, Path(directory))))


def rescore(champion: Champion[Bundle] | None, score: Callable[[Bundle], float]) -> ChampionRescored | None:
    """The champion's selection metric on this run's holdout (`score`), or None when there is no
    champion or it cannot score these rows (another feature set): promotion then falls back to
    the champion's own tag, and the log says why."""
    if champion is None:
        return None
    try:
        value = float(score(champion.bundle))
    except (KeyError, ValueError, RuntimeError) as error:
        logger.warning("the champion v%s cannot be scored on this holdout (%s); promotion compares its own tag",
                       champion.version, error)
        return None
    return None if math.isnan(value) else ChampionRescored(champion.version, value)


def rescored_metadata(rescored: ChampionRescored | None) -> dict[str, object]:
    """What the asset's registration record holds of it (read back by `rescored_from`)."""
    if rescored is None:
        return {}
    return {"champion_rescored_version": rescored.version, "champion_rescored_metric": rescored.metric_value}


def rescored_from(registration: dict[str, object]) -> ChampionRescored | None:
    if "champion_rescored_version" not in registration:
        return None
    return ChampionRescored(str(registration["champion_rescored_version"]),
                            float(registration["champion_rescored_metric"]))
