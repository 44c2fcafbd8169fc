"""Configuration of the ranker."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RankerConfig:
    """Feature names are the columns of the ranking frame (impression × user × video features).

    The defaults are the unambiguous columns of `ranking_training_examples`, `user_features_daily`
    and `video_features_daily`; user- and video-level columns that share a name (impressions_7d,
    clicks_7d) are left out until the frame builder gives them distinct names. Override freely.
    """

    categorical_features: list[str] = field(
        default_factory=lambda: ["surface", "country", "device", "age_bucket", "gender", "category",
                                 "creator_id", "video_id"]
    )
    numeric_features: list[str] = field(
        default_factory=lambda: ["watch_count_28d", "watch_seconds_28d", "mean_watch_fraction_28d",
                                 "like_count_28d", "active_days_28d", "duration_seconds", "video_age_days",
                                 "ctr_7d", "watches_7d", "watch_seconds_7d", "mean_watch_fraction_7d",
                                 "like_rate_7d", "watch_count_total"]
    )
    embedding_dim: int = 16  # for every categorical feature not in embedding_dims
    embedding_dims: dict[str, int] = field(default_factory=lambda: {"video_id": 32, "creator_id": 16})
    category_min_count: int = 5  # rarer values share the unknown (0, zero-vector) embedding
    num_quantiles: int = 100
    hidden_widths: tuple[int, ...] = (128, 64)
    epochs: int = 3
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    show_progress: bool = True

    def __post_init__(self) -> None:
        self.categorical_features = list(self.categorical_features)
        self.numeric_features = list(self.numeric_features)
        self.hidden_widths = tuple(self.hidden_widths)
        if not self.categorical_features and not self.numeric_features:
            raise ValueError("RankerConfig needs at least one categorical or numeric feature")
        overlap = set(self.categorical_features) & set(self.numeric_features)
        if overlap:
            raise ValueError(f"features listed as both categorical and numeric: {sorted(overlap)}")

    def embedding_dim_of(self, feature: str) -> int:
        return self.embedding_dims.get(feature, self.embedding_dim)
