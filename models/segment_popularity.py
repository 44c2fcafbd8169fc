"""Popular in the user's segment: what a brand-new user is shown before they have watched anything.

Global popularity answers every new user alike. But taste leans on demographics (on the simulated
data, on the age bucket by construction; on real services, on country and language), so a user
who arrives with a profile and no history is better served by what people like them watch. A
segment is a combination of demographic values, e.g. `age_bucket=18-24,country=US`.

Segments back off from fine to coarse (`SegmentConfig.levels`, finest first): a request is
answered by the first level whose segment had at least `min_users` distinct watchers in the
fitted window, so a rare combination falls back to its age bucket alone, then to its country,
and a user with no usable demographics gets None (the caller answers with global popularity).
Each segment's ranking is the same most-watched-recently ranking as `PopularityRecommender`, fitted
on that segment's users only, kept to `depth` videos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from models.popularity import PopularityConfig, PopularityRecommender
from vidrec.schema import UNKNOWN

# The demographics a segment can be made of: the raw `users` columns (vidrec.schema.USERS).
DEMOGRAPHIC_COLUMNS = ("country", "device", "age_bucket", "gender")
# Finest first. Age bucket leads because taste leans on it; country next (language, local trends).
DEFAULT_LEVELS: tuple[tuple[str, ...], ...] = (("age_bucket", "country"), ("age_bucket",), ("country",))


@dataclass(frozen=True)
class SegmentConfig:
    levels: tuple[tuple[str, ...], ...] = DEFAULT_LEVELS
    min_users: int = 30  # distinct watchers in the window a segment needs to answer for its members
    depth: int = 1000  # videos kept per segment (the rest of a long list comes from global popularity)

    def __post_init__(self) -> None:
        unknown = sorted({column for level in self.levels for column in level} - set(DEMOGRAPHIC_COLUMNS))
        if unknown:
            raise ValueError(f"segment levels name {unknown}, which are not demographics; expected some of "
                             f"{list(DEMOGRAPHIC_COLUMNS)}")
        if not self.levels or any(not level for level in self.levels):
            raise ValueError(f"levels must be non-empty tuples of demographic columns, got {self.levels!r}")
        if self.min_users < 1 or self.depth < 1:
            raise ValueError(f"min_users and depth must be positive, got {self.min_users} and {self.depth}")


def segment_key(level: tuple[str, ...], demographics: Mapping[str, object]) -> str | None:
    """`col=value,...` for `level`, or None when a value is missing or unknown (no segment to use)."""
    parts = []
    for column in level:
        value = demographics.get(column)
        if value is None or value == UNKNOWN or (isinstance(value, float) and pd.isna(value)):
            return None
        parts.append(f"{column}={value}")
    return ",".join(parts)


@dataclass
class SegmentPopularity:
    """Most-watched-recently rankings per demographic segment; see the module docstring."""

    config: SegmentConfig = field(default_factory=SegmentConfig)
    rankings: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # key → (video, recent count)

    @classmethod
    def fit(
        cls, interactions: pd.DataFrame, users: pd.DataFrame, config: SegmentConfig | None = None,
        popularity: PopularityConfig | None = None, now: pd.Timestamp | None = None,
    ) -> SegmentPopularity:
        """Fit on `interactions` (user_id, video_id, first_watch_time: filter to training first) with
        `users` (user_id and the demographic columns); the window ends at `now` (default: last watch)."""
        config = config or SegmentConfig()
        needed = sorted({column for level in config.levels for column in level})
        missing = [column for column in ("user_id", *needed) if column not in users.columns]
        if missing:
            raise ValueError(f"users lacks columns {missing}; segments need user_id and {needed}")
        if now is None and not interactions.empty:
            now = pd.to_datetime(interactions["first_watch_time"]).max()
        watched = interactions.merge(users[["user_id", *needed]].drop_duplicates("user_id"), on="user_id", how="inner")
        rankings: dict[str, list[tuple[int, float]]] = {}
        for level in config.levels:
            keys = watched[list(level)].astype(str).agg(",".join, axis=1) if len(watched) else pd.Series(dtype=str)
            for values, members in watched.groupby(keys, sort=True):
                key = segment_key(level, dict(zip(level, str(values).split(","), strict=True)))
                if key is None or members["user_id"].nunique() < config.min_users:
                    continue
                ranking = PopularityRecommender(popularity).fit(members, now=now)
                rankings[key] = ranking.recommend(min(config.depth, members["video_id"].nunique()))
        return cls(config, rankings)

    def segment_for(self, demographics: Mapping[str, object]) -> str | None:
        """The finest fitted segment `demographics` belong to, or None (answer with global popularity)."""
        for level in self.config.levels:
            key = segment_key(level, demographics)
            if key is not None and key in self.rankings:
                return key
        return None

    def recommend(self, segment: str, k: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, float]]:
        """Up to k (video_id, recent watchers in the segment) of `segment`, skipping `exclude`."""
        return [(video, score) for video, score in self.rankings[segment] if video not in exclude][:k]

    def to_payload(self) -> dict:
        return {"config": {**asdict(self.config), "levels": [list(level) for level in self.config.levels]},
                "rankings": {key: [list(row) for row in rows] for key, rows in self.rankings.items()}}

    @classmethod
    def from_payload(cls, payload: dict) -> SegmentPopularity:
        config = payload["config"]
        return cls(
            SegmentConfig(levels=tuple(tuple(level) for level in config["levels"]), min_users=config["min_users"],
                          depth=config["depth"]),
            {key: [(int(video), float(score)) for video, score in rows] for key, rows in payload["rankings"].items()},
        )
