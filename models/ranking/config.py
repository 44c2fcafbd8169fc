"""Configuration of the ranker: features, architecture, heads, calibration and the product's score."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.early_stopping import check_schedule

HEADS = ("watch_time", "click", "like", "skip")
PROBABILITY_HEADS = ("click", "like", "skip")  # calibrated; watch_time is a weighted-LR odds
ARCHITECTURES = ("shared_bottom", "mmoe")


@dataclass
class RankerConfig:
    """Feature names are the columns of the ranking frame (impression × user × video features).

    The defaults are the unambiguous columns of `ranking_training_examples`, `user_features_daily`
    and `video_features_daily`; user- and video-level columns that share a name (impressions_7d,
    clicks_7d) are left out until the frame builder gives them distinct names. Override freely.

    Heads (all trained jointly, one logit each; see models/ranking/train.py for the labels):
    `watch_time` (watch-time-weighted LR, e^f ≈ expected watch seconds per impression), `click`
    (P(click | impression)), `like` (P(like | impression), on every impression), `skip`
    (P(short watch | impression): clicked and watched < `skip_watch_fraction` of the video or
    < `skip_watch_seconds`).

    `score_weights` is product configuration, not a learned quantity: the served score is
    Σ weight × value over heads, where the value is e^f in seconds for `watch_time` and the
    calibrated probability for the others. The unit is therefore "watch seconds": the default
    says a like is worth 30 watch seconds and a skip costs 30.
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
    # Features that look up another feature's table (one id space, different roles: the paper's
    # shared embeddings). Applies only when both features are inputs.
    shared_embeddings: dict[str, str] = field(
        default_factory=lambda: {"last_watched_video_id": "video_id", "recent_watch_video_ids": "video_id"}
    )
    # List-valued features (bags of ids, e.g. the user's recent watches): the embeddings of the
    # last `max_bag_length` ids are averaged (unknown ids left out) and fed with, when the bag
    # shares the table of a categorical feature, the dot product of that average with the
    # feature's embedding: how close the candidate video is to what the user watched. A tree or
    # linear model cannot build this user-by-candidate similarity from raw ids; the net learns it.
    bag_features: list[str] = field(default_factory=list)
    max_bag_length: int = 50
    category_min_count: int = 5  # rarer values share the unknown (0, zero-vector) embedding
    num_quantiles: int = 100
    # Architecture: "shared_bottom" (one MLP trunk, a linear head per task) or "mmoe" (num_experts
    # MLP experts, a softmax gate per task mixing them, a linear head per task).
    architecture: str = "shared_bottom"
    hidden_widths: tuple[int, ...] = (128, 64)  # the trunk, or each expert under MMoE
    num_experts: int = 4
    # Dropout and cross layers are tuned by bench/ranking.py (docs/benchmarks.md); the defaults are
    # the shape a bundle saved before these fields existed has, so its config.json still loads.
    dropout: float = 0.0  # after every hidden layer of the trunk (or of each expert)
    # DCN-v2 cross layers (Wang et al., 2021) on the input, before the trunk: x ← x₀ ⊙ (W x + b) + x.
    # Each layer raises the degree of the explicit feature crosses by one (user × candidate, what a
    # tree gets from its splits); an MLP of ReLUs learns such products only approximately.
    cross_layers: int = 0
    # Wide & Deep (Cheng et al., 2016): per head, a linear term over the raw inputs (one weight per
    # categorical value, per numeric input, per id of a bag, averaged like the bag) added to the
    # logit, so the ranker holds the logistic regression it is compared with and the deep part
    # learns what that misses.
    wide: bool = False
    # Weight of an in-request listwise term on the watch_time logit (models/ranking/listwise.py),
    # added to the pointwise losses: training then batches whole requests. 0 = pointwise only, the
    # shape a bundle saved before this field existed has.
    listwise_weight: float = 0.0
    heads: tuple[str, ...] = HEADS
    task_weights: dict[str, float] = field(default_factory=dict)  # loss weight per head, default 1
    watch_time_weighted: bool = True  # False: the watch_time head is a plain (equal-weight) LR on clicks
    # Position/bias tower: a linear term per head from (position, surface) added to the logits in
    # training only; serving and evaluation use position `serving_position` (the top slot).
    position_column: str | None = "position"
    bias_surface_feature: str | None = "surface"  # a categorical feature; None or absent: position only
    num_positions: int = 10  # positions ≥ this share the last bucket
    serving_position: int = 0
    # Labels.
    skip_watch_fraction: float = 0.2
    skip_watch_seconds: float = 10.0
    # Calibration of PROBABILITY_HEADS on the last `calibration_share` of train rows (by time).
    calibration_share: float = 0.1
    calibration_bins: int = 15  # equal-frequency (weighted) bins for ECE and reliability diagrams
    score_weights: dict[str, float] = field(
        default_factory=lambda: {"watch_time": 1.0, "like": 30.0, "skip": -30.0}
    )
    # Long training with L2 decay: without the decay the id embeddings overfit within a few
    # epochs; with it, 36 epochs had the lowest validation loss on simulated data (bench/ranking.py
    # tunes these on validation; docs/benchmarks.md).
    epochs: int = 36  # the most that run when stopping early
    # Early stopping (models/early_stopping.py): after each epoch the training objective (the
    # pointwise losses; no listwise term) on the calibration rows, which no weight fits on; stop
    # once `early_stopping_patience` epochs in a row have not improved on the best by more than
    # `early_stopping_min_delta`, and keep the best epoch's weights. The calibration rows double as
    # validation rows, as in bench/ranking.py, which chose `epochs` on them: a separate slice
    # before them would take more of the newest rows from fitting, while choosing one epoch count
    # on the calibration rows biases the calibrators fitted there only mildly. None (the default):
    # every epoch runs and the last weights are kept, the fixed schedule bench/ranking.py tuned
    # (the curve on the calibration rows is still recorded).
    # Off by default because on the default data that schedule is already tuned and the objective
    # is flat, within noise, over its last ~15 epochs: patience 5 (and 10) kept an epoch of that
    # plateau (26-27 of 36) with the same holdout AUC and log loss but a GAUC 0.004-0.011 lower
    # (seeds 0 and 1). Turn it on where `epochs` is not tuned for the data, e.g. with a larger maximum.
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0
    # Epochs of a fit that starts from the champion's weights (train_ranker's `warm_start`; the
    # incremental retrain): the champion already holds what the window before the newest day
    # taught, so a few passes over the whole window take in the new day.
    warm_start_epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 1e-3
    seed: int = 0
    show_progress: bool = True
    # Where training runs ("auto": the GPU when torch sees one, else the CPU; or "cpu", "cuda",
    # "cuda:1"): the model and batches live there during training only; the returned bundle is
    # always on the CPU, where serving scores.
    device: str = "auto"
    # On a GPU, record one training step as a CUDA graph and replay it for every full batch
    # (models/graphed_step.py): the step is hundreds of small kernels, and launching them one by
    # one bounded GPU training. No effect on the CPU or with a listwise term (its batches vary).
    cuda_graph: bool = True

    def __post_init__(self) -> None:
        self.categorical_features = list(self.categorical_features)
        self.numeric_features = list(self.numeric_features)
        self.bag_features = list(self.bag_features)
        self.hidden_widths = tuple(self.hidden_widths)
        self.heads = tuple(self.heads)
        if not self.categorical_features and not self.numeric_features:
            raise ValueError("RankerConfig needs at least one categorical or numeric feature")
        kinds = (self.categorical_features, self.numeric_features, self.bag_features)
        overlap = {name for index, names in enumerate(kinds) for name in names
                   if any(name in other for other in kinds[index + 1:])}
        if overlap:
            raise ValueError(f"features listed under more than one kind (categorical, numeric, bag): {sorted(overlap)}")
        if self.max_bag_length < 1:
            raise ValueError(f"max_bag_length must be at least 1, got {self.max_bag_length}")
        if self.cross_layers < 0:
            raise ValueError(f"cross_layers must be at least 0, got {self.cross_layers}")
        if self.listwise_weight < 0:
            raise ValueError(f"listwise_weight must be at least 0, got {self.listwise_weight}")
        if self.listwise_weight > 0 and "watch_time" not in self.heads:
            raise ValueError("listwise_weight > 0 needs the watch_time head, whose logit the listwise term ranks by")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        unknown = [head for head in (*self.heads, *self.score_weights, *self.task_weights) if head not in HEADS]
        if unknown:
            raise ValueError(f"unknown heads {unknown}; known heads are {HEADS}")
        unscored = [head for head in self.score_weights if head not in self.heads]
        if unscored:
            raise ValueError(f"score_weights name heads {unscored} that are not in heads {self.heads}")
        if not 0.0 <= self.calibration_share < 1.0:
            raise ValueError(f"calibration_share must be in [0, 1), got {self.calibration_share}")
        check_schedule("RankerConfig", self.epochs, self.early_stopping_patience, self.early_stopping_min_delta)
        if self.warm_start_epochs < 1:
            raise ValueError(f"warm_start_epochs must be at least 1, got {self.warm_start_epochs}")
        if self.early_stopping_patience is not None and self.calibration_share == 0:
            raise ValueError("RankerConfig stops early on its calibration rows, but calibration_share is 0: "
                             "set calibration_share > 0, or early_stopping_patience=None to train every epoch")

    def embedding_dim_of(self, feature: str) -> int:
        return self.embedding_dims.get(self.table_of(feature), self.embedding_dim)

    def table_of(self, feature: str) -> str:
        """The feature whose vocabulary and embedding table `feature` uses (itself unless shared)."""
        owner = self.shared_embeddings.get(feature, feature)
        return owner if owner in self.categorical_features else feature

    def bag_owner(self, bag: str) -> str | None:
        """The categorical feature whose table a bag feature shares, or None (its own table)."""
        owner = self.shared_embeddings.get(bag)
        return owner if owner in self.categorical_features else None

    @property
    def uses_bias_surface(self) -> bool:
        return self.bias_surface_feature is not None and self.bias_surface_feature in self.categorical_features
