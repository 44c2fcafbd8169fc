"""The raw `impressions` rows of one /recommend answer: one per served item, with what only the
service knows beside what a client would report.

Request id, user, surface, position (0-based slot) and video as the response has them; the
impression time is the request's time on the recommender's request clock (the data clock on
simulated data, so served rows continue the log rather than jump to today); `source` the
nominating retrieval source and `source_score` the rank score the ranker read (1 / (1 + rank in
that source; an unknown user's popular videos are ranked by popularity, as the `popular` source);
the final score, propensity, reason and explored flag of the API item; the ranker's head values
(`head_predictions`, null where it did not score the list, as for unknown users) and the model
versions that answered.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from serving.events.raw_rows import ServedImpression
from serving.served_list import ServedAnswer


def served_impressions(answer: ServedAnswer) -> list[ServedImpression]:
    """The rows of `answer`'s items; none when its user id cannot be a raw log id (the raw suite
    requires positive ids, and the API accepts user 0)."""
    response, served = answer.response, answer.served
    if response.user_id < 1:
        return []
    impression_time = datetime.fromtimestamp(answer.request_time, UTC).replace(tzinfo=None)
    model_versions = dict(response.model_versions) or None
    return [
        ServedImpression({
            "request_id": response.request_id,
            "user_id": response.user_id,
            "video_id": item.video_id,
            "surface": response.surface,
            "position": position,
            "impression_time": impression_time,
            "source": item.source,
            "source_score": None if served.rank_scores is None else _finite(served.rank_scores[position]),
            "score": _finite(item.score),
            "propensity": _finite(item.propensity),
            "reason": item.reason,
            "explored": item.explored,
            "head_predictions": _head_predictions(served.head_values, position),
            "model_versions": model_versions,
        })
        for position, item in enumerate(response.items)
        if item.video_id >= 1
    ]


def _head_predictions(head_values: dict[str, np.ndarray] | None, position: int) -> dict[str, float] | None:
    if head_values is None:
        return None
    values = {head: float(values[position]) for head, values in head_values.items()
              if math.isfinite(values[position])}
    return values or None


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
