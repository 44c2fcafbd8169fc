"""Which candidates may be shown at all, and how relevant each is before diversity.

Hard rules (a video that breaks one is never shown, by any slot): blocklisted, watched past the
threshold, or a second copy of a video already in the list. Soft rules change relevance only: the
freshness boost for new uploads of subscribed creators.
"""

from __future__ import annotations

import numpy as np

from serving.policy.blocklist import Blocklist, sorted_membership
from serving.policy.config import PolicyConfig
from serving.policy.inputs import UserContext

SECONDS_PER_HOUR = 3600.0


def first_best_copies(video_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """A mask keeping one row per video id: its highest-scored copy (the first among equals).

    Retrieval's union already deduplicates, so this is a guard that costs one sort when it finds
    nothing; it keeps the best copy because a video nominated twice deserves its better score.
    """
    order = np.argsort(video_ids, kind="stable")
    sorted_ids = video_ids[order]
    if not (sorted_ids[1:] == sorted_ids[:-1]).any():
        return np.ones(len(video_ids), dtype=bool)
    best_first = np.lexsort((np.arange(len(video_ids)), -scores, video_ids))
    ids_in_order = video_ids[best_first]
    leaders = np.ones(len(video_ids), dtype=bool)
    leaders[1:] = ids_in_order[1:] != ids_in_order[:-1]
    keep = np.zeros(len(video_ids), dtype=bool)
    keep[best_first[leaders]] = True
    return keep


def watched_past_threshold(video_ids: np.ndarray, user: UserContext, threshold: float) -> np.ndarray:
    """Mask of the videos the user watched more than `threshold` of."""
    finished = np.unique(user.watched_video_ids[user.watched_fractions > threshold])
    return sorted_membership(video_ids, finished)


def fresh_from_subscriptions(
    creator_ids: np.ndarray, upload_times: np.ndarray, user: UserContext, config: PolicyConfig
) -> np.ndarray:
    """Mask of uploads younger than `fresh_upload_hours` whose creator the user subscribes to.

    A future upload time (clock skew between the uploader and serving) counts as fresh.
    """
    fresh = upload_times > user.request_time - config.fresh_upload_hours * SECONDS_PER_HOUR
    if not fresh.any() or len(user.subscribed_creator_ids) == 0:
        return np.zeros(len(creator_ids), dtype=bool)
    fresh[fresh] = sorted_membership(creator_ids[fresh], np.unique(user.subscribed_creator_ids))
    return fresh


def relevance(scores: np.ndarray, eligible: np.ndarray, boosted: np.ndarray, boost: float) -> np.ndarray:
    """Ranker scores min-max scaled to [0, 1] over the eligible candidates, plus `boost` where boosted.

    Scaling puts relevance on the scale of the similarity MMR subtracts (0..1) whatever unit the
    ranker scores in. Min-max keeps the ranker's gaps (a rank transform would not) at the price of
    letting one outlier compress the rest; with all scores equal every candidate gets 1.
    Rows that are not eligible get 0, so every entry is finite (the MMR arithmetic needs that).
    """
    if not eligible.any():
        return np.zeros(len(scores))
    low, high = scores[eligible].min(), scores[eligible].max()
    if not np.isfinite(high - low):  # a span past float64's range: shrink before subtracting
        scores = scores / max(abs(low), abs(high))
        low, high = scores[eligible].min(), scores[eligible].max()
    with np.errstate(over="ignore", invalid="ignore"):  # only rows that are not eligible can overflow
        scaled = (scores - low) / (high - low) if high > low else np.ones(len(scores))
    return np.where(eligible, scaled + boost * boosted, 0.0)


def eligible_candidates(
    video_ids: np.ndarray, scores: np.ndarray, user: UserContext, config: PolicyConfig, blocklist: Blocklist
) -> tuple[np.ndarray, int, int]:
    """(mask of showable candidates, how many were blocklisted, how many were watched past the threshold)."""
    blocked = blocklist.contains(video_ids)
    watched = watched_past_threshold(video_ids, user, config.watched_fraction_threshold)
    eligible = first_best_copies(video_ids, scores) & ~blocked & ~watched
    return eligible, int(np.count_nonzero(blocked)), int(np.count_nonzero(watched))
