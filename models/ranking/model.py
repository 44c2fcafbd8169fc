"""The ranker: embeddings of categorical features and quantile-normalised numerics → a shared
representation → one logit per head, plus a shallow position/bias tower used only in training.

Two architectures from one config (`RankerConfig.architecture`):
- `shared_bottom`: one ReLU MLP trunk; every head is a linear layer on its output.
- `mmoe` (Ma et al., 2018): `num_experts` ReLU MLPs over the same input; each head has a softmax
  gate (a linear layer on the input) that mixes the experts' outputs, then a linear layer.
Either can put DCN-v2 cross layers (`cross_layers`) between the input and the MLPs, and add a
wide part (`wide`: Wide & Deep's linear model of the raw inputs) to every head's logit.

The bias tower (Covington et al. feed position as a feature in training and a fixed value at
serving) adds, per head, a learned offset for the impression's position bucket and surface. At
serving the position is unknown, so `forward` without `positions` uses `serving_position` (the
top slot) for every row: within one request every candidate gets the same offset, so the ranking
is position-free and the calibrators (fit on these serving-mode logits) absorb the constant.
"""

from __future__ import annotations

import torch
from torch import nn

from models.ranking.config import RankerConfig
from models.ranking.preprocessing import RankerInputs

WATCH_TIME_HEAD = "watch_time"


def _mlp(width: int, hidden_widths: tuple[int, ...], dropout: float = 0.0) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for hidden in hidden_widths:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    return nn.Sequential(*layers), width


class CrossNetwork(nn.Module):
    """DCN-v2 cross layers: x_{l+1} = x₀ ⊙ (W_l x_l + b_l) + x_l, width unchanged. Layer l holds
    every product of up to l + 1 input coordinates; the residual keeps the lower degrees."""

    def __init__(self, width: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(num_layers))
        for layer in self.layers:  # starts as the identity: the trunk first sees the plain input
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        crossed = inputs
        for layer in self.layers:
            crossed = inputs * layer(crossed) + crossed  # (batch, width)
        return crossed


class WideTower(nn.Module):
    """The wide part of Wide & Deep: per head, a weight per categorical value (its own table, not
    the deep part's), a linear map of the numeric inputs and, per bag, the mean weight of its
    known ids; summed to one (batch, heads) logit offset. Zero-initialised: training starts from
    the deep part alone."""

    def __init__(self, categorical_sizes: list[int], numeric_width: int, bag_sizes: list[int], num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.categorical = nn.ModuleList(nn.Embedding(size, num_heads, padding_idx=0) for size in categorical_sizes)
        self.numeric = nn.Linear(numeric_width, num_heads, bias=False) if numeric_width else None
        self.bags = nn.ModuleList(nn.Embedding(size, num_heads, padding_idx=0) for size in bag_sizes)
        for parameter in self.parameters():
            nn.init.zeros_(parameter)

    def forward(self, inputs: RankerInputs) -> torch.Tensor:
        offset = torch.zeros(len(inputs), self.num_heads, device=inputs.categorical.device)  # (batch, heads)
        for column, table in enumerate(self.categorical):
            offset = offset + table(inputs.categorical[:, column])
        if self.numeric is not None:
            offset = offset + self.numeric(inputs.numeric)
        for index, table in enumerate(self.bags):
            ids = inputs.bags[:, index]  # (batch, bag length), 0 = unknown or padding (a zero weight)
            known = (ids > 0).sum(dim=1, keepdim=True).clamp(min=1)
            offset = offset + table(ids).sum(dim=1) / known
        return offset


class MixtureOfExperts(nn.Module):
    """MMoE: experts (num_experts, hidden) mixed by one softmax gate per head."""

    def __init__(self, width: int, hidden_widths: tuple[int, ...], num_experts: int, heads: tuple[str, ...],
                 dropout: float = 0.0):
        super().__init__()
        experts = [_mlp(width, hidden_widths, dropout) for _ in range(num_experts)]
        self.experts = nn.ModuleList(expert for expert, _ in experts)
        self.output_width = experts[0][1]
        self.gates = nn.ModuleDict({name: nn.Linear(width, num_experts) for name in heads})

    def gate_weights(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        # each (batch, experts)
        return {name: torch.softmax(gate(features), dim=-1) for name, gate in self.gates.items()}

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        expert_outputs = torch.stack([expert(features) for expert in self.experts], dim=1)  # (batch, experts, hidden)
        return {
            name: torch.einsum("be,beh->bh", weights, expert_outputs)  # (batch, hidden)
            for name, weights in self.gate_weights(features).items()
        }


class BiasTower(nn.Module):
    """Per-head additive logit from (position bucket, surface): a linear model, deliberately shallow."""

    def __init__(self, num_positions: int, num_surfaces: int, num_heads: int):
        super().__init__()
        self.num_positions = num_positions
        self.position = nn.Embedding(num_positions, num_heads)
        self.surface = nn.Embedding(num_surfaces, num_heads) if num_surfaces else None
        nn.init.zeros_(self.position.weight)
        if self.surface is not None:
            nn.init.zeros_(self.surface.weight)

    def forward(self, positions: torch.Tensor, surfaces: torch.Tensor | None) -> torch.Tensor:
        bias = self.position(positions.clamp(0, self.num_positions - 1))  # (batch, heads)
        if self.surface is not None and surfaces is not None:
            bias = bias + self.surface(surfaces)
        return bias


class Ranker(nn.Module):
    def __init__(self, config: RankerConfig, vocabulary_sizes: dict[str, int], numeric_width: int,
                 heads: tuple[str, ...] | None = None, bag_vocabulary_sizes: dict[str, int] | None = None):
        super().__init__()
        self.head_names = tuple(heads or config.heads)
        self.serving_position = config.serving_position
        bag_vocabulary_sizes = bag_vocabulary_sizes or {}
        bag_features = [name for name in config.bag_features if name in bag_vocabulary_sizes]
        tables = {
            name: nn.Embedding(vocabulary_sizes[name], config.embedding_dim_of(name), padding_idx=0)
            for name in config.categorical_features
            if config.table_of(name) == name
        }
        tables.update({
            name: nn.Embedding(bag_vocabulary_sizes[name], config.embedding_dim_of(name), padding_idx=0)
            for name in bag_features if config.bag_owner(name) is None
        })
        # A shared feature reuses its owner's table object: one set of parameters, two roles.
        self.embeddings = nn.ModuleList(tables[config.table_of(name)] for name in config.categorical_features)
        self.bag_embeddings = nn.ModuleList(tables[config.table_of(name)] for name in bag_features)
        # Per bag: the categorical column whose embedding the bag's average is dotted with (-1: none).
        self.bag_partners = [
            config.categorical_features.index(config.bag_owner(name)) if config.bag_owner(name) is not None else -1
            for name in bag_features
        ]
        width = sum(table.embedding_dim for table in self.embeddings) + numeric_width
        width += sum(
            table.embedding_dim + (partner >= 0) for table, partner in zip(self.bag_embeddings, self.bag_partners)
        )
        self.cross = CrossNetwork(width, config.cross_layers) if config.cross_layers else None
        if config.architecture == "mmoe":
            self.trunk = None
            self.mixture = MixtureOfExperts(width, config.hidden_widths, config.num_experts, self.head_names,
                                            config.dropout)
            output_width = self.mixture.output_width
        else:
            self.mixture = None
            self.trunk, output_width = _mlp(width, config.hidden_widths, config.dropout)
        self.wide = WideTower([vocabulary_sizes[name] for name in config.categorical_features], numeric_width,
                              [bag_vocabulary_sizes[name] for name in bag_features],
                              len(self.head_names)) if config.wide else None
        self.heads = nn.ModuleDict({name: nn.Linear(output_width, 1) for name in self.head_names})
        self.surface_column = (
            config.categorical_features.index(config.bias_surface_feature) if config.uses_bias_surface else None
        )
        num_surfaces = vocabulary_sizes[config.bias_surface_feature] if config.uses_bias_surface else 0
        self.bias_tower = BiasTower(config.num_positions, num_surfaces, len(self.head_names))

    @torch.no_grad()
    def flush_denormal_weights(self) -> int:
        """Set weights too small for a normal float (L2 decay drives rare ids' embeddings there)
        to zero; returns how many. CPUs compute on denormal floats many times slower: 1 % of
        denormal weights made scoring 500 candidates 4× slower. Their values (< 1e-38) change
        no score."""
        flushed = 0
        for parameter in self.parameters():
            tiny = (parameter.abs() < torch.finfo(parameter.dtype).tiny) & (parameter != 0)
            flushed += int(tiny.sum())
            parameter[tiny] = 0.0
        return flushed

    def features(self, inputs: RankerInputs) -> torch.Tensor:
        embedded = [table(inputs.categorical[:, column]) for column, table in enumerate(self.embeddings)]
        bagged = []
        for index, (table, partner) in enumerate(zip(self.bag_embeddings, self.bag_partners)):
            ids = inputs.bags[:, index]  # (batch, bag length), 0 = unknown or padding
            if not self.training and len(ids) > 1 and torch.equal(ids, ids[:1].expand_as(ids)):
                # one user's request at serving: every candidate has the same bag, average it once
                # (not in training: shuffled batches mix users, and the check would stop a CUDA graph)
                ids = ids[:1]
            known = (ids > 0).sum(dim=1, keepdim=True).clamp(min=1)
            average = table(ids).sum(dim=1) / known  # padding rows of the table are zero
            average = average.expand(len(inputs), -1)
            bagged.append(average)
            if partner >= 0:
                bagged.append((average * embedded[partner]).sum(dim=-1, keepdim=True))
        return torch.cat([*embedded, inputs.numeric, *bagged], dim=-1)  # (batch, embeddings + numerics + bags)

    def forward(self, inputs: RankerInputs, positions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits per head, each (batch,). `positions` (batch,) int64 in training; None at serving."""
        features = self.features(inputs)
        if self.cross is not None:
            features = self.cross(features)
        if self.mixture is not None:
            hidden = self.mixture(features)  # head → (batch, hidden)
        else:
            shared = self.trunk(features)  # (batch, hidden_widths[-1])
            hidden = dict.fromkeys(self.head_names, shared)
        if positions is None:
            positions = torch.full((len(inputs),), self.serving_position, dtype=torch.int64)
        surfaces = inputs.categorical[:, self.surface_column] if self.surface_column is not None else None
        offsets = self.bias_tower(positions, surfaces)  # (batch, heads)
        if self.wide is not None:
            offsets = offsets + self.wide(inputs)
        return {
            name: self.heads[name](hidden[name]).squeeze(-1) + offsets[:, column]
            for column, name in enumerate(self.head_names)
        }
