"""An in-request listwise term for the ranker's watch-time logit, and the batches it needs.

Why: the pointwise watch-time-weighted log loss fits how long each impression is watched on its
own, while the product ranks the candidates of one request against each other (the benchmark's
GAUC and watch-time-weighted pairwise loss). The listwise term asks, within each request, that a
softmax over the candidates' logits put its mass where the watch seconds went:

    loss = −Σ_i r_i · (s_i − logsumexp_{j in request(i)} s_j) / Σ_i r_i

with r_i the row's watch seconds (0 unless clicked) and s_i = logit_i + log(example_weight_i): a
kept non-click that stands for 1/rate down-sampled ones enters the softmax denominator that many
times, so the term estimates the full request. Weighting by r makes it the softmax analogue of the
watch-weighted pairwise loss: a second of watch time anywhere counts the same.

It needs whole requests in a batch, so training with it packs shuffled requests into batches
(`request_batches`) instead of shuffling rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from models.ranking.labels import example_weights, request_groups


def request_codes(frame: pd.DataFrame) -> np.ndarray:
    """(n,) int64 request code per row (models/ranking/labels.py::request_groups), refused when the
    frame has no key that separates requests (the whole frame would be one list)."""
    if "request_id" not in frame.columns and "user_id" not in frame.columns:
        raise ValueError("a listwise ranker loss needs request_id or user_id columns to group rows into requests")
    codes, _ = pd.factorize(request_groups(frame))
    return codes.astype(np.int64)


def listwise_targets(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(relevance, log sampling weight) per row: watch seconds of clicked rows (0 otherwise) and
    log(example_weight)."""
    clicked = frame["clicked"].fillna(False).astype(bool).to_numpy()
    seconds = frame["watch_seconds"].fillna(0.0).to_numpy(np.float64).clip(min=0.0)
    return np.where(clicked, seconds, 0.0), np.log(example_weights(frame))


def request_batches(codes: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Row indices per batch: requests in a random order (drawn from `generator`), each whole in
    one batch, a new batch started once `batch_size` rows are reached (a batch holds at least one
    request, so a request longer than batch_size is not split)."""
    num_requests = int(codes.max()) + 1 if len(codes) else 0
    order = torch.randperm(num_requests, generator=generator).numpy()
    rank_of_request = np.empty(num_requests, dtype=np.int64)
    rank_of_request[order] = np.arange(num_requests)
    rows = np.argsort(rank_of_request[codes], kind="stable")  # rows grouped by request, requests shuffled
    sizes = np.bincount(codes, minlength=num_requests)[order]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    batch_of_request = starts // batch_size
    ends = np.cumsum(sizes)
    boundaries = ends[np.flatnonzero(np.diff(batch_of_request, append=-1) != 0)]  # last row of each batch + 1
    return np.split(rows, boundaries[:-1]) if len(rows) else []


def listwise_loss(logits: torch.Tensor, codes: torch.Tensor, relevance: torch.Tensor,
                  log_weight: torch.Tensor) -> torch.Tensor:
    """The module docstring's loss over one batch of whole requests (0 when nothing was watched)."""
    _, group = torch.unique(codes, return_inverse=True)
    num_groups = int(group.max()) + 1
    scores = logits + log_weight
    peak = torch.full((num_groups,), -torch.inf, device=scores.device, dtype=scores.dtype)
    peak = peak.scatter_reduce(0, group, scores.detach(), reduce="amax")
    summed = torch.zeros(num_groups, device=scores.device, dtype=scores.dtype).index_add(
        0, group, torch.exp(scores - peak[group]))
    log_normaliser = torch.log(summed) + peak
    # a batch where nothing was watched gives 0 (with its graph), and no device sync to find out
    return -(relevance * (scores - log_normaliser[group])).sum() / relevance.sum().clamp(min=1e-12)
