"""The two-tower candidate generator (Covington et al. 2016, §3, plus a content-aware video tower).

User tower: the paper's — averaged watch history, averaged search tokens, demographics and
`example_age` → ReLU MLP → user vector u. Two additions, both on by default because they lifted
validation recall on both benchmark data sets (docs/benchmarks.md): the history average is
weighted by a learned weight per recency position (the paper's plain mean is the starting point,
and the newest watches say most about the next one), and the watched videos' categories and
creators are averaged too, through the video tower's own tables (a video watched once has a
barely trained id embedding, but its category is shared by hundreds of videos).

Video tower: the video-id embedding (the SAME table the history averages over, as the paper
shares embeddings) plus creator, category and title tokens → MLP → video vector v. The paper
used free softmax weights as v; building v from content instead means a video nobody has
watched yet (id index 0 → zero id embedding) still gets a useful vector.
Score = u · v, so serving is a maximum-inner-product search.

Optionally a freshness logit, shared by all users, is added to u · v / temperature: a learned
function of the video's age at the query's reference time (freshness.py). It folds into the
search as one extra coordinate (video: its logit at index-build time; user: 1, with u scaled by
1 / temperature).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import nn

from models.retrieval.config import RetrievalConfig
from models.retrieval.features import UserInputs, VideoInputs
from models.retrieval.freshness import NUM_AGE_BUCKETS, age_buckets


@dataclass
class VocabularySizes:
    """Embedding-table sizes (each includes index 0), fixed by the vocabularies."""

    video: int
    search_token: int
    title_token: int
    creator: int
    category: int
    country: int
    device: int
    age_bucket: int
    gender: int


def masked_mean(embedding: nn.Embedding, indices: torch.Tensor) -> torch.Tensor:
    """Mean of the embeddings of non-zero indices; all-padding rows give a zero vector."""
    vectors = embedding(indices)  # (batch, length, dim)
    return weighted_mean(vectors, (indices != 0).to(vectors.dtype))  # (batch, dim)


def weighted_mean(vectors: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(batch, dim) weighted mean of (batch, length, dim) vectors; all-zero weights give a zero vector."""
    return (vectors * weights.unsqueeze(-1)).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)


def mlp(input_width: int, widths: tuple[int, ...]) -> nn.Sequential:
    """ReLU between layers, none after the last: output vectors need negative coordinates."""
    layers: list[nn.Module] = []
    for index, width in enumerate(widths):
        layers.append(nn.Linear(input_width, width))
        if index < len(widths) - 1:
            layers.append(nn.ReLU())
        input_width = width
    return nn.Sequential(*layers)


class CandidateGenerator(nn.Module):
    # The vocabulary (models/retrieval/bundle.py's names) indexing each embedding table's rows: a
    # warm start carries the champion's rows through it (models/warm_start.py).
    TABLE_VOCABULARIES: ClassVar[Mapping[str, str]] = MappingProxyType({
        "video_embedding.weight": "video",
        "video_output_embedding.weight": "video",
        "search_token_embedding.weight": "search_token",
        "title_token_embedding.weight": "title_token",
        "creator_embedding.weight": "creator",
        "category_embedding.weight": "category",
        "user_feature_embeddings.0.weight": "country",
        "user_feature_embeddings.1.weight": "device",
        "user_feature_embeddings.2.weight": "age_bucket",
        "user_feature_embeddings.3.weight": "gender",
    })

    def __init__(self, config: RetrievalConfig, sizes: VocabularySizes):
        super().__init__()
        dim, feature_dim, token_dim = config.embedding_dim, config.feature_embedding_dim, config.token_embedding_dim
        self.video_embedding = nn.Embedding(sizes.video, dim, padding_idx=0)  # shared by both towers
        self.search_token_embedding = nn.Embedding(sizes.search_token, token_dim, padding_idx=0)
        self.user_feature_embeddings = nn.ModuleList(
            nn.Embedding(size, feature_dim, padding_idx=0)
            for size in (sizes.country, sizes.device, sizes.age_bucket, sizes.gender)
        )
        self.title_token_embedding = nn.Embedding(sizes.title_token, token_dim, padding_idx=0)
        self.creator_embedding = nn.Embedding(sizes.creator, feature_dim, padding_idx=0)
        self.category_embedding = nn.Embedding(sizes.category, feature_dim, padding_idx=0)
        # Optional content of the watched videos on the user side: each history video's category and
        # creator (through the video tower's own tables), looked up by video-id index.
        # Registered only when on, so bundles saved without the option load unchanged.
        self.history_content = config.history_content
        if config.history_content:
            self.register_buffer("category_of_video", torch.zeros(sizes.video, dtype=torch.long))
            self.register_buffer("creator_of_video", torch.zeros(sizes.video, dtype=torch.long))
        user_width = dim + token_dim + 4 * feature_dim + 1 + (2 * feature_dim if config.history_content else 0)
        self.user_tower = mlp(user_width, config.tower_widths)
        self.video_tower = mlp(dim + 2 * feature_dim + token_dim, config.item_tower_widths)
        self.normalize_embeddings = config.normalize_embeddings
        # Optional free output vector per video, as the paper's softmax weights; zero for never-watched videos.
        self.video_output_embedding = (
            nn.Embedding(sizes.video, dim, padding_idx=0) if config.video_id_output_embedding else None
        )
        # Optional freshness: one logit per age bucket, shared by all users (see freshness.py); starts neutral.
        self.video_age_logit = nn.Embedding(NUM_AGE_BUCKETS, 1) if config.video_age_logit else None
        if self.video_age_logit is not None:
            nn.init.zeros_(self.video_age_logit.weight)
        # Optional recency weighting of the watch history: one log-weight per position from the newest
        # (0 = the last watch); zeros start as the paper's plain average.
        self.history_recency_logit = (
            nn.Parameter(torch.zeros(config.history_length)) if config.history_recency_weights else None
        )
        tables = [self.video_embedding, self.search_token_embedding, self.title_token_embedding]
        if self.video_output_embedding is not None:
            tables.append(self.video_output_embedding)
        for table in tables:
            nn.init.normal_(table.weight, std=0.05)
            with torch.no_grad():
                table.weight[0].zero_()

    def set_video_content(self, videos: VideoInputs) -> None:
        """Record each id-indexed video's category and creator (from the catalog's encoded rows)."""
        if not self.history_content:
            return
        with torch.no_grad():
            self.category_of_video[videos.video] = videos.category.to(self.category_of_video.device)
            self.creator_of_video[videos.video] = videos.creator.to(self.creator_of_video.device)
            self.category_of_video[0] = 0
            self.creator_of_video[0] = 0

    def weighted_history(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The history (batch, length) and each position's weight (batch, length), 0 on padding.

        With recency weights the history is returned newest first (known videos only, so position
        0 is the newest watch the model knows), and one learned weight per column broadcasts over
        the batch (indexing the weights by a per-row recency tensor instead made the backward pass
        three times slower on a GPU).
        """
        mask = history != 0  # oldest first, right-padded; an unknown video is 0 too and is skipped
        if self.history_recency_logit is None:
            return history, mask.to(torch.float32)
        columns = torch.arange(1, history.shape[1] + 1, device=history.device)
        # Known watches newest first, then the zeros: column j holds the (j+1)-th newest known watch.
        newest_first = history.gather(1, torch.argsort(torch.where(mask, columns, 0), dim=1, descending=True))
        weights = torch.exp(self.history_recency_logit[: history.shape[1]]).unsqueeze(0) * (newest_first != 0)
        return newest_first, weights

    def user_vectors(self, users: UserInputs) -> torch.Tensor:
        demographics = [
            table(users.categorical[:, column]) for column, table in enumerate(self.user_feature_embeddings)
        ]  # 4 × (batch, feature_dim)
        watched, weights = self.weighted_history(users.history)
        history = [weighted_mean(self.video_embedding(watched), weights)]  # (batch, dim)
        if self.history_content:
            history.append(weighted_mean(self.category_embedding(self.category_of_video[watched]), weights))
            history.append(weighted_mean(self.creator_embedding(self.creator_of_video[watched]), weights))
        features = torch.cat(
            [
                *history,
                masked_mean(self.search_token_embedding, users.search_tokens),  # (batch, token_dim)
                *demographics,
                users.example_age.unsqueeze(-1),  # (batch, 1)
            ],
            dim=-1,
        )
        vectors = self.user_tower(features)  # (batch, dim)
        return nn.functional.normalize(vectors, dim=-1) if self.normalize_embeddings else vectors

    def video_vectors(self, videos: VideoInputs) -> torch.Tensor:
        features = torch.cat(
            [
                self.video_embedding(videos.video),  # (videos, dim); zero for never-watched videos
                self.creator_embedding(videos.creator),  # (videos, feature_dim)
                self.category_embedding(videos.category),  # (videos, feature_dim)
                masked_mean(self.title_token_embedding, videos.title_tokens),  # (videos, token_dim)
            ],
            dim=-1,
        )
        vectors = self.video_tower(features)  # (videos, dim)
        if self.video_output_embedding is not None:
            vectors = vectors + self.video_output_embedding(videos.video)
        return nn.functional.normalize(vectors, dim=-1) if self.normalize_embeddings else vectors

    def age_logits(self, reference_days: torch.Tensor, upload_days: torch.Tensor) -> torch.Tensor:
        """(n, m) freshness logits of m videos at n reference times (zeros when the option is off)."""
        if self.video_age_logit is None:
            return torch.zeros(len(reference_days), len(upload_days), device=upload_days.device)
        return self.video_age_logit(age_buckets(reference_days, upload_days)).squeeze(-1)

    def forward(self, users: UserInputs, videos: VideoInputs) -> torch.Tensor:
        """Scores of every user against every video: (users, videos)."""
        return self.user_vectors(users) @ self.video_vectors(videos).T
