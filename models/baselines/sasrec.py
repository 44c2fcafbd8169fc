"""SASRec (Kang & McAuley 2018): next-item prediction with causal self-attention over the history.

The sequential baseline: it sees the order of each user's watches, as our candidate generator's
recency weights do. Compact on purpose: item embedding + learned positional embedding, a stack of
pre-norm `nn.TransformerEncoderLayer`s under a causal mask, and the item embedding reused as the
output layer. Each user's train sequence (oldest → newest, the last `max_length` + 1 items) trains
the model to predict the next item at every position with a full softmax over the training items;
catalogs here are a few thousand items, where the full softmax is cheap and beats sampled BCE.
`recommend` scores every training item from the last position of the user's last `max_length`
items. Ids only: users and items unseen in training cannot be scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from models.baselines.base import InteractionMatrix, ScoringRecommender, check_query_time

logger = logging.getLogger(__name__)

PADDING = 0  # item index 0 pads short sequences on the left; item i ≥ 1 is item_ids[i - 1]


@dataclass
class SASRecConfig:
    """Defaults fit an ml-100k-sized log (943 users, 1.6k items, 80k watches) in ~20 s on one CPU thread."""

    hidden_dim: int = 64  # item and position embeddings, attention and feed-forward width / 4
    num_layers: int = 2  # self-attention blocks
    num_heads: int = 2  # must divide hidden_dim
    dropout: float = 0.2  # on embeddings and inside every block
    max_length: int = 50  # most recent train items a user's sequence keeps
    epochs: int = 10  # passes over the users (one sequence each), so steps = epochs × users / batch_size
    learning_rate: float = 3e-3  # AdamW
    weight_decay: float = 0.0  # AdamW's decoupled decay
    batch_size: int = 64  # users per step
    seed: int = 0  # initial weights, user order and dropout; deterministic on the CPU
    device: str | None = None  # None: cuda when available, else cpu

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide hidden_dim={self.hidden_dim}")
        for name in ("hidden_dim", "num_layers", "max_length", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


class SASRecModule(nn.Module):
    def __init__(self, num_items: int, config: SASRecConfig):
        super().__init__()
        self.item_embedding = nn.Embedding(num_items + 1, config.hidden_dim, padding_idx=PADDING)
        self.position_embedding = nn.Embedding(config.max_length, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.hidden_dim, config.num_heads, dim_feedforward=4 * config.hidden_dim,
                dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True,
            )
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.hidden_dim)
        self.num_heads = config.num_heads
        # small embeddings (as GPT-2): the item table is also the output layer, and N(0, 1) would
        # start the softmax saturated and drown the positions
        for table in (self.item_embedding, self.position_embedding):
            nn.init.normal_(table.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PADDING].zero_()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(batch, length) item indices, left-padded → (batch, length, hidden) state per position."""
        length = sequences.shape[1]
        positions = torch.arange(length, device=sequences.device)
        hidden = self.dropout(self.item_embedding(sequences) + self.position_embedding(positions))
        mask = self._attention_mask(sequences)
        for block in self.blocks:
            hidden = block(hidden, src_mask=mask)
        return self.final_norm(hidden)

    def _attention_mask(self, sequences: torch.Tensor) -> torch.Tensor:
        """(batch × heads, length, length), True = may not attend: the future and the padding.
        A padded position attends to itself only, so no row is fully masked (that gives NaN)."""
        length = sequences.shape[1]
        future = torch.ones(length, length, dtype=torch.bool, device=sequences.device).triu(1)
        itself = torch.eye(length, dtype=torch.bool, device=sequences.device)
        padding = (sequences == PADDING)[:, None, :] & ~itself  # (batch, query, key)
        return (future | padding).repeat_interleave(self.num_heads, dim=0)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden) → (..., items): one logit per training item (padding left out)."""
        return hidden @ self.item_embedding.weight[1:].T


def user_sequences(train: pd.DataFrame, item_index: pd.Index) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted user ids and each one's item indices (1-based), oldest first; ties in time by video id."""
    frame = train.sort_values(["user_id", "time", "video_id"], kind="stable")
    frame = frame.drop_duplicates(["user_id", "video_id"], keep="first")
    items = item_index.get_indexer(frame["video_id"].to_numpy(np.int64)) + 1
    user_ids, starts = np.unique(frame["user_id"].to_numpy(np.int64), return_index=True)
    return user_ids, np.split(items, starts[1:])


def left_padded(sequences: Sequence[np.ndarray], length: int) -> np.ndarray:
    """(len(sequences), length): each sequence's last `length` items, right-aligned after PADDING."""
    padded = np.full((len(sequences), length), PADDING, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = sequence[-length:]
        padded[row, length - len(tail):] = tail
    return padded


def train_sasrec(sequences: Sequence[np.ndarray], num_items: int, config: SASRecConfig,
                 device: torch.device) -> SASRecModule:
    """Next-item cross-entropy at every position of every user's last `max_length` + 1 items.
    Seeds only a forked RNG, so the caller's torch random state is left as it was."""
    windows = left_padded(sequences, config.max_length + 1)
    inputs = torch.from_numpy(windows[:, :-1]).to(device)
    targets = torch.from_numpy(windows[:, 1:] - 1).to(device)  # class of the next item; -1 = padding
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        model = SASRecModule(num_items, config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.seed)
        model.train()
        for epoch in range(config.epochs):
            order = torch.randperm(len(windows), generator=generator).to(device)
            total_loss, total_targets = 0.0, 0
            for batch in order.split(config.batch_size):
                batch_targets = targets[batch]
                scored = batch_targets >= 0
                if not scored.any():  # only users with a single watch: nothing to predict
                    continue
                hidden = model(inputs[batch])[scored]  # (scored positions, hidden)
                loss = F.cross_entropy(model.item_logits(hidden), batch_targets[scored])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * int(scored.sum())
                total_targets += int(scored.sum())
            logger.debug("sasrec epoch %d: next-item loss %.4f", epoch + 1, total_loss / max(total_targets, 1))
    return model.eval()


class SASRec(ScoringRecommender):
    """SASRec behind the shared `Recommender` interface: `SASRec(seed=3, epochs=20)` overrides
    `SASRecConfig`'s defaults (or those of a `config` given), so a tuner passes keywords."""

    def __init__(self, config: SASRecConfig | None = None, **overrides):
        self.config = replace(config or SASRecConfig(), **overrides)

    def fit(self, train: pd.DataFrame, query_time: Any = None) -> SASRec:
        """`query_time` is not used: SASRec reads the order of the history, not its age."""
        check_query_time(train, query_time)
        self.data = InteractionMatrix(train)  # ids ↔ rows and columns; the order comes from `time` below
        config = self.config
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        user_ids, sequences = user_sequences(train, self.data.item_index)  # user_ids == self.data.user_ids
        self.sequences = left_padded(sequences, config.max_length)  # (users, max_length): what scoring reads
        self.model = train_sasrec(sequences, len(self.data.item_ids), config, self.device)
        logger.info("sasrec fitted on %d users, %d items (%s)", len(user_ids), len(self.data.item_ids), asdict(config))
        return self

    @torch.no_grad()
    def _scores(self, rows: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """(len(rows), items) next-item logits after each user's train sequence."""
        chunks = []
        for start in range(0, len(rows), batch_size):
            sequences = torch.from_numpy(self.sequences[rows[start:start + batch_size]]).to(self.device)
            last = self.model(sequences)[:, -1]  # (batch, hidden): the newest item's position
            chunks.append(self.model.item_logits(last).double().cpu().numpy())
        return np.concatenate(chunks)
