"""Video age at the query's reference time, as a learned logit added to the two-tower score.

Why: what a user watches next depends on what is new *then* (the simulator boosts videos
uploaded in the last ~4 days; real platforms surface fresh uploads), and nothing uploaded after
the query can be watched before it exists. Item-item baselines and an id embedding cannot tell a
fresh video from an old one, because age depends on when you ask. So the score is

    score(user, video, t) = u · v / temperature + age_logit[bucket(t − upload_time(video))]

with t the example's *reference time*: the time of the last event the query knows (for a rollback
example, its last history watch; for a served query, now). Training and serving therefore see the
same quantity, and an age can be negative (uploaded after the last known event). One scalar per
age bucket, shared by every user, so serving stays a maximum-inner-product search: append
age_logit(now) to each video vector and a 1 to each user vector (divided by the temperature).

Times are float days since the Unix epoch (float64): enough precision for minutes, and cheap to
subtract for a (batch, candidates) grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

# Bucket edges in days; buckets are (-inf, e0), [e0, e1), ..., [e_last, inf), plus one for an
# unknown upload or reference time. Fine steps around 0–5 days (where freshness acts), then
# roughly doubling, up to the decades of MovieLens release dates.
AGE_BUCKET_EDGES_DAYS = (
    -14.0, -7.0, -3.0, -1.0, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 14.0, 21.0,
    30.0, 45.0, 60.0, 90.0, 180.0, 365.0, 730.0, 1460.0, 2920.0, 5840.0,
)
NUM_AGE_BUCKETS = len(AGE_BUCKET_EDGES_DAYS) + 2  # + the open-ended last bucket + "unknown"
UNKNOWN_AGE_BUCKET = NUM_AGE_BUCKETS - 1

_EPOCH = pd.Timestamp("1970-01-01")


def epoch_days(times) -> np.ndarray:
    """Timestamps (a Series, array or list; NaT allowed) → float64 days since the epoch, NaN for NaT."""
    values = pd.to_datetime(pd.Series(times)).to_numpy("datetime64[ns]")
    days = (values - np.datetime64(_EPOCH, "ns")) / np.timedelta64(1, "D")
    return np.asarray(days, dtype=np.float64)


def age_buckets(reference_days: torch.Tensor, upload_days: torch.Tensor) -> torch.Tensor:
    """(n, m) int64 bucket of each video's age at each reference time.

    reference_days: (n,) float64; upload_days: (m,) float64; NaN in either → the unknown bucket.
    """
    age = reference_days.unsqueeze(1) - upload_days.unsqueeze(0)  # (n, m) days
    edges = torch.tensor(AGE_BUCKET_EDGES_DAYS, dtype=age.dtype, device=age.device)
    buckets = torch.bucketize(age, edges, right=True)  # 0 .. len(edges)
    return buckets.masked_fill(torch.isnan(age), UNKNOWN_AGE_BUCKET)
