"""Warm starts: a new model begins from the champion's weights instead of a random draw.

A daily retrain sees yesterday's data plus one day. Training from scratch spends most of its
epochs relearning what the champion already knows; starting from the champion's weights needs a
few epochs on the whole window to take in the new day (the incremental mode of issues 13 and 15).

The new model's vocabularies are rebuilt on the new data, so an id's row in an embedding table
moves, new ids get rows, and ids that fell out lose theirs. Each embedding table is therefore
carried row by row through the two vocabularies (`vocabulary_rows`): a token known to both keeps
its learned vector, a new token keeps the new model's initialisation, and the unknown/padding row
stays as the new model has it. Every other parameter is copied whole and must have the same shape:
a champion of another architecture (other features, widths or heads) cannot seed this model, and
`transfer_parameters` says which parameter differs instead of copying a part of it. Buffers are
left alone: they are derived from the new data (e.g. each video's category), not learned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.retrieval.vocabulary import OOV_INDEX, Vocabulary

NO_ROW = -1


class WarmStartMismatch(ValueError):
    """The champion's parameters do not fit the new model's architecture."""


@dataclass(frozen=True)
class WarmStartReport:
    parameters: int  # parameter tensors copied (whole or row by row)
    carried_rows: int  # embedding rows whose token both vocabularies hold
    new_rows: int  # embedding rows of tokens the champion did not know (left at their initialisation)

    def as_metrics(self) -> dict[str, float]:
        return {"warm_start_parameters": float(self.parameters), "warm_start_carried_rows": float(self.carried_rows),
                "warm_start_new_rows": float(self.new_rows)}


def vocabulary_rows(new: Vocabulary, old: Vocabulary) -> np.ndarray:
    """For each row of the new table, the old table's row of the same token (NO_ROW for a token
    the old vocabulary lacks); the unknown/padding row maps to NO_ROW too: it stays as it is."""
    rows = np.full(len(new), NO_ROW, dtype=np.int64)
    old_rows = np.fromiter((old.index(token) for token in new.tokens), dtype=np.int64, count=len(new.tokens))
    rows[1:] = np.where(old_rows == OOV_INDEX, NO_ROW, old_rows)
    return rows


@torch.no_grad()
def transfer_parameters(model: nn.Module, champion: nn.Module,
                        table_rows: Mapping[str, np.ndarray]) -> WarmStartReport:
    """Copy `champion`'s learned parameters into `model`, in place: the parameters named in
    `table_rows` row by row (their new-row → old-row map, see `vocabulary_rows`), every other one
    whole. Raises WarmStartMismatch, leaving `model` untouched, when a parameter is missing from the
    champion or differs in shape."""
    source = dict(champion.named_parameters(remove_duplicate=False))
    plan = []
    for name, target in model.named_parameters(remove_duplicate=False):
        if name not in source:
            raise WarmStartMismatch(f"the champion has no parameter {name!r}")
        old = source[name]
        if name in table_rows:
            rows = table_rows[name]
            if old.shape[1:] != target.shape[1:] or len(rows) != target.shape[0]:
                raise WarmStartMismatch(f"embedding {name!r}: the champion's table is {tuple(old.shape)}, the new "
                                        f"one {tuple(target.shape)} with {len(rows)} mapped rows")
            if rows.max(initial=NO_ROW) >= old.shape[0]:
                raise WarmStartMismatch(f"embedding {name!r}: a mapped row lies outside the champion's table")
        elif old.shape != target.shape:
            raise WarmStartMismatch(f"parameter {name!r}: the champion's shape is {tuple(old.shape)}, the new "
                                    f"model's {tuple(target.shape)}")
        plan.append((name, target, old))
    carried = new = 0
    for name, target, old in plan:
        if name in table_rows:
            rows = table_rows[name]
            known = np.flatnonzero(rows != NO_ROW)
            target[torch.from_numpy(known)] = old.detach()[torch.from_numpy(rows[known])].to(target)
            carried += len(known)
            new += int((rows[1:] == NO_ROW).sum())
        else:
            target.copy_(old.detach().to(target))
    return WarmStartReport(parameters=len(plan), carried_rows=carried, new_rows=new)
