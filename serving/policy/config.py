"""The re-ranking policy's knobs: one frozen dataclass, filled from `VIDREC_POLICY_*` settings.

Every field of `PolicyConfig` is a `policy_<field>` field of `vidrec.settings.VidrecSettings`
(env var `VIDREC_POLICY_<FIELD>`), so `policy_config_from_settings` is the only mapping and it
cannot drift: a field added here is asked of the settings by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DiversitySimilarity = Literal["category", "embedding"]
SETTINGS_PREFIX = "policy_"


@dataclass(frozen=True)
class PolicyConfig:
    # At most this many videos of one creator in one returned list (explored slots included).
    max_per_creator: int = 2
    # No two neighbours from one creator whenever the list can still be arranged that way; when it
    # cannot (one creator dominates what is left), a neighbour of another creator is still
    # preferred and the same creator is placed adjacent only as the last resort (constraints.py).
    separate_adjacent_creators: bool = True
    # MMR trade-off per slot: lambda * relevance - (1 - lambda) * (max similarity to the videos
    # above). 1 = the ranker's order; 0 = diversity only. Relevance is the ranker score min-max
    # scaled to [0, 1] over the request's eligible candidates, so 0.8 lets a video of an unseen
    # topic pass one of a shown topic unless the latter's relevance is 0.25 higher. A guess until
    # tuned offline.
    diversity_lambda: float = 0.8
    # "category": similar = same category (cheap, always available); "embedding": cosine of the
    # caller's video embeddings, negatives counted as 0 (unrelated).
    diversity_similarity: DiversitySimilarity = "category"
    # Videos the user watched past this fraction of their duration are never shown again.
    watched_fraction_threshold: float = 0.8
    # An upload younger than this (at request time) from a creator the user subscribes to gets
    # `fresh_subscription_boost` added to its [0, 1] relevance, and the reason "new from a creator
    # you follow".
    fresh_upload_hours: float = 48.0
    fresh_subscription_boost: float = 0.2
    # Per-slot probability of showing a uniformly drawn exploration-pool video instead of the
    # policy's choice (epsilon-greedy), so the expected share of explored slots is this value
    # wherever the pool has an admissible video. 0 switches exploration off.
    exploration_share: float = 0.03
    # None: each request's random stream comes from OS entropy. An int: the stream is derived
    # from (seed, request id), so an exploration decision can be replayed from the logs.
    exploration_seed: int | None = None
    # Retrieval sources whose candidates were nominated by one watched video; with that video id
    # known the reason is "because you watched X".
    item_to_item_sources: tuple[str, ...] = ("co_watch",)
    # Retrieval sources whose candidates get the reason "trending".
    trending_sources: tuple[str, ...] = ("trending", "popular")
    # One video id per line ('#' starts a comment); these videos are never shown. None: no list.
    blocklist_path: Path | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.max_per_creator < 1:
            problems.append(f"max_per_creator must be >= 1, got {self.max_per_creator}")
        for name in ("diversity_lambda", "watched_fraction_threshold", "exploration_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if self.diversity_similarity not in ("category", "embedding"):
            problems.append(
                f"diversity_similarity must be 'category' or 'embedding', got {self.diversity_similarity!r}"
            )
        if self.fresh_upload_hours < 0:
            problems.append(f"fresh_upload_hours must be >= 0, got {self.fresh_upload_hours}")
        if self.fresh_subscription_boost < 0:
            problems.append(f"fresh_subscription_boost must be >= 0, got {self.fresh_subscription_boost}")
        if problems:
            raise ValueError("invalid policy config: " + "; ".join(problems))
        # Settings may hand over lists (JSON env values); a frozen config keeps tuples.
        object.__setattr__(self, "item_to_item_sources", tuple(self.item_to_item_sources))
        object.__setattr__(self, "trending_sources", tuple(self.trending_sources))
        if self.blocklist_path is not None:
            object.__setattr__(self, "blocklist_path", Path(self.blocklist_path))


def policy_settings_fields() -> dict[str, object]:
    """The settings fields the policy reads, `policy_<field>` → default (env `VIDREC_POLICY_<FIELD>`).

    This is the list to declare on `VidrecSettings`; it is derived from `PolicyConfig`, so it
    names exactly what `policy_config_from_settings` asks for.
    """
    return {SETTINGS_PREFIX + field.name: field.default for field in dataclasses.fields(PolicyConfig)}


def policy_config_from_settings(settings: object) -> PolicyConfig:
    """A `PolicyConfig` from a settings object's `policy_*` fields (every field required).

    Raises `AttributeError` listing every missing `policy_*` field rather than defaulting quietly,
    so settings that lack a knob cannot serve with a value nobody chose.
    """
    names = [field.name for field in dataclasses.fields(PolicyConfig)]
    missing = [SETTINGS_PREFIX + name for name in names if not hasattr(settings, SETTINGS_PREFIX + name)]
    if missing:
        raise AttributeError(
            f"{type(settings).__name__} lacks the policy fields {missing}; declare them as listed by "
            "serving.policy.config.policy_settings_fields()"
        )
    return PolicyConfig(**{name: getattr(settings, SETTINGS_PREFIX + name) for name in names})
