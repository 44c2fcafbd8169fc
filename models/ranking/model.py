"""The ranker: embeddings of categorical features and quantile-normalised numerics → ReLU MLP →
one logit per head.

There is one head today, `watch_time` (a watch-time-weighted logistic regression, so e^logit
estimates expected watch time). Heads live in a ModuleDict over a shared trunk so the multi-task
version (click, like, share, ...) adds entries rather than changing the shape of the model.
"""

from __future__ import annotations

import torch
from torch import nn

from models.ranking.config import RankerConfig
from models.ranking.preprocessing import RankerInputs

WATCH_TIME_HEAD = "watch_time"


class Ranker(nn.Module):
    def __init__(self, config: RankerConfig, vocabulary_sizes: dict[str, int], numeric_width: int,
                 heads: tuple[str, ...] = (WATCH_TIME_HEAD,)):
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(vocabulary_sizes[name], config.embedding_dim_of(name), padding_idx=0)
            for name in config.categorical_features
        )
        width = sum(table.embedding_dim for table in self.embeddings) + numeric_width
        layers: list[nn.Module] = []
        for hidden in config.hidden_widths:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({name: nn.Linear(width, 1) for name in heads})

    def forward(self, inputs: RankerInputs) -> dict[str, torch.Tensor]:
        embedded = [table(inputs.categorical[:, column]) for column, table in enumerate(self.embeddings)]
        features = torch.cat([*embedded, inputs.numeric], dim=-1)  # (batch, embeddings + numerics)
        hidden = self.trunk(features)  # (batch, hidden_widths[-1])
        return {name: head(hidden).squeeze(-1) for name, head in self.heads.items()}  # each (batch,)
