"""Which weights a model asset starts from: the champion's (an incremental retrain) or none.

With `VidrecSettings.warm_start` on, the ranker and the candidate generator begin from the bundle
their registered model's `champion` alias points at. The first run of a home has no champion, and
a champion of another architecture cannot seed the new model (models/warm_start.py): both train
from scratch, and the run records why, so a slow retrain is explained in MLflow and the Dagster UI
rather than guessed at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from models.registry import RegisteredArtifact
from models.warm_start import WarmStartMismatch
from orchestration.champions import Champion
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

Bundle = TypeVar("Bundle")


@dataclass(frozen=True)
class StartingPoint(Generic[Bundle]):
    bundle: Bundle | None  # the champion's bundle, or None: train from scratch
    description: str  # "champion v3", or why the run trains from scratch


def starting_point(settings: VidrecSettings, artifact: RegisteredArtifact,
                   champion: Champion[Bundle] | None) -> StartingPoint[Bundle]:
    """The champion (orchestration/champions.py's `load_champion`) to start from, when warm starts
    are on and there is one."""
    if not settings.warm_start:
        return StartingPoint(None, "off: trained from scratch (VIDREC_WARM_START is false)")
    if champion is None:
        return StartingPoint(None, f"no champion of {artifact.name} yet: trained from scratch")
    return StartingPoint(champion.bundle, f"champion v{champion.version}")


def train_from(point: StartingPoint[Bundle], train: Callable[[Bundle | None], object]) -> tuple[object, str]:
    """`train(point.bundle)`, or `train(None)` when the champion's architecture does not fit the new
    model; (the trained bundle, what it started from)."""
    if point.bundle is None:
        return train(None), point.description
    try:
        return train(point.bundle), point.description
    except WarmStartMismatch as mismatch:
        logger.warning("warm start from the %s is impossible (%s); training from scratch", point.description, mismatch)
        return train(None), f"trained from scratch: the {point.description} does not fit ({mismatch})"
