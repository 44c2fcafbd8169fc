"""What a closed-loop run measured: per-arm, per-day metrics and the interval of the arms' difference.

The loop driver returns one *served* frame, a row per item shown: which arm and loop day, the
request and its user, the video and its creator, what the simulated user did with it (click,
watch seconds, like), and what the simulator's ground truth says about it (`truly_relevant`).
Everything here is computed from that frame alone, so the report can be rebuilt from a saved run.

The daily metrics answer the issue's two questions side by side: does an arm serve users better
(watch seconds per user, click-through, precision against the true top items), and does it narrow
the system over days (catalog coverage, how concentrated creator exposure is, how much of the
traffic goes to videos under a day old, how many users' lists collapsed onto someone else's).

Arms hold different users (assignment is by a hash of the user), so the difference between two
arms is an unpaired, two-sample bootstrap: each arm's users are resampled on their own. The
paired difference in `models.evaluation.bootstrap` would be wrong here, since there is no unit
that both arms scored. The interval follows that module's conventions (ratio of sums over units,
percentile interval, `resamples`, `seed`) and returns its `Interval`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse

from models.evaluation.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, Interval, two_sample_difference

SERVED_COLUMNS = (
    "arm",
    "day",
    "request_id",
    "user_id",
    "video_id",
    "creator_id",
    "position",
    "request_time",
    "upload_time",
    "clicked",
    "watch_seconds",
    "liked",
    "truly_relevant",
    "propensity",
    "explored",
)
# The columns daily_arm_metrics reads (position, liked, propensity and explored are for other readers).
_DAILY_INPUT_COLUMNS = tuple(
    column for column in SERVED_COLUMNS if column not in ("position", "liked", "propensity", "explored")
)
_PER_USER_INPUT_COLUMNS = ("arm", "day", "user_id", "watch_seconds")

# The daily metrics in the order reports show them; the primary one first.
PRIMARY_METRIC = "watch_seconds_per_user"
DAILY_METRICS = (
    PRIMARY_METRIC,
    "click_through",
    "true_precision_at_k",
    "catalog_coverage",
    "creator_exposure_gini",
    "fresh_share",
    "cold_share",
    "collapsed_user_share",
    "mean_jaccard",
)
DAILY_COUNTS = ("users", "requests", "impressions")

FRESH_VIDEO_AGE = pd.Timedelta(hours=24)  # the "videos under 24 h old"
# A video shown fewer times than this before the day (the log before the loop, then every arm's
# earlier days) is cold: the share of impressions on cold videos is what exposure the catalog's
# unjudged tail gets, uploads or not.
COLD_VIDEO_IMPRESSIONS = 100
COLLAPSE_JACCARD = 0.5  # a user's list this close to another user's counts as collapsed


def gini(values: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative amounts: 0 when all are equal, (n − 1)/n when one holds all.

    Zeros count: the Gini of exposure over creators is only meaningful when the creators nobody
    was shown are among the values (`creator_exposure_gini` adds them)."""
    amounts = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if amounts.size == 0:
        raise ValueError("gini needs at least one value, got none")
    if not np.all(np.isfinite(amounts)) or amounts[0] < 0:
        raise ValueError("gini needs finite, non-negative values")
    total = amounts.sum()
    if total <= 0:
        raise ValueError("gini is undefined when every value is 0 (nothing to share out)")
    count = amounts.size
    ranks = np.arange(1, count + 1, dtype=np.float64)
    return float(2.0 * (ranks @ amounts) / (count * total) - (count + 1) / count)


def creator_exposure_gini(creator_ids: Sequence[int] | np.ndarray | pd.Series, n_creators: int) -> float:
    """Gini of impressions per creator over all `n_creators`, the never-shown ones included.

    `creator_ids` holds one entry per impression."""
    impressions_per_creator = pd.Series(np.asarray(creator_ids)).value_counts().to_numpy()
    if impressions_per_creator.size > n_creators:
        raise ValueError(
            f"impressions name {impressions_per_creator.size} distinct creators but n_creators is {n_creators}"
        )
    unexposed = np.zeros(n_creators - impressions_per_creator.size)
    return gini(np.concatenate([impressions_per_creator, unexposed]))


@dataclass(frozen=True)
class ListOverlap:
    """How alike users' lists are: the share of users whose list nearly equals another user's, and
    the Jaccard similarity averaged over every pair of users (NaN with fewer than two users)."""

    collapsed_user_share: float
    mean_jaccard: float


def list_overlap(
    user_ids: Sequence[int] | np.ndarray,
    video_ids: Sequence[int] | np.ndarray,
    collapse_threshold: float = COLLAPSE_JACCARD,
) -> ListOverlap:
    """Jaccard overlap between users' video sets, given as (user, video) membership pairs.

    A user is collapsed when some other user's set has Jaccard ≥ `collapse_threshold` with theirs.
    All pairwise intersections come from one sparse product (users × videos times its transpose),
    so only pairs that share a video are ever touched: 2,000 users with 20 videos each take
    milliseconds, where a loop over the two million pairs would take minutes."""
    user_ids, video_ids = np.asarray(user_ids), np.asarray(video_ids)
    if user_ids.shape != video_ids.shape or user_ids.ndim != 1:
        raise ValueError(f"user_ids and video_ids must be 1-D and aligned, got {user_ids.shape} and {video_ids.shape}")
    if user_ids.size == 0:
        raise ValueError("list_overlap needs at least one (user, video) pair, got none")
    users, user_rows = np.unique(user_ids, return_inverse=True)
    videos, video_columns = np.unique(video_ids, return_inverse=True)
    membership = sparse.csr_matrix(
        (np.ones(user_rows.size), (user_rows, video_columns)), shape=(users.size, videos.size)
    )
    membership.data[:] = 1.0  # a video twice in one list is one member of its set
    set_sizes = np.asarray(membership.sum(axis=1)).ravel()

    shared = (membership @ membership.T).tocoo()  # (users, users): intersection sizes
    between_users = shared.row != shared.col
    rows, columns = shared.row[between_users], shared.col[between_users]
    intersections = shared.data[between_users]
    jaccard = intersections / (set_sizes[rows] + set_sizes[columns] - intersections)

    collapsed = np.zeros(users.size, dtype=bool)
    collapsed[rows[jaccard >= collapse_threshold]] = True
    # Each unordered pair appears twice in the symmetric product; pairs sharing nothing add 0.
    ordered_pairs = users.size * (users.size - 1)
    mean_jaccard = float(jaccard.sum() / ordered_pairs) if ordered_pairs else float("nan")
    return ListOverlap(collapsed_user_share=float(collapsed.mean()), mean_jaccard=mean_jaccard)


def last_lists(served_day: pd.DataFrame) -> pd.DataFrame:
    """The rows of each user's last request (latest request_time; request_id breaks ties)."""
    requests = served_day.groupby("request_id", sort=False).agg(
        user_id=("user_id", "first"), request_time=("request_time", "max")
    )
    last_request_ids = (
        requests.reset_index().sort_values(["user_id", "request_time", "request_id"]).drop_duplicates(
            "user_id", keep="last"
        )["request_id"]
    )
    return served_day[served_day["request_id"].isin(last_request_ids)]


def daily_arm_metrics(
    served: pd.DataFrame, catalog_size: int | pd.Series | Mapping[int, int], n_creators: int,
    prior_impressions: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per (arm, day): the counts in `DAILY_COUNTS` and the metrics in `DAILY_METRICS`.

    - watch_seconds_per_user: watch seconds / distinct users served that day (the primary metric);
    - click_through: clicks / impressions;
    - true_precision_at_k: per request, the share of its items among the user's true top items,
      averaged over requests (a short list is judged on what it showed, not padded to k);
    - catalog_coverage: distinct videos shown / videos available that day (`catalog_size`: one
      number for every day, or per day as a Series or mapping indexed by day);
    - creator_exposure_gini: Gini of impressions over all `n_creators`, unexposed ones included;
    - fresh_share: share of impressions of videos uploaded less than 24 h before the request;
    - cold_share: share of impressions of videos shown fewer than COLD_VIDEO_IMPRESSIONS times
      before that day: `prior_impressions` (video_id → impressions before the loop; None: none)
      plus every arm's rows of earlier days;
    - collapsed_user_share, mean_jaccard: `list_overlap` of each user's last list of the day.
    """
    _check_served(served, _DAILY_INPUT_COLUMNS)
    if isinstance(n_creators, bool) or not isinstance(n_creators, Integral) or n_creators < 1:
        raise ValueError(f"n_creators must be a positive integer, got {n_creators!r}")
    video_age = served["request_time"] - served["upload_time"]
    if (video_age < pd.Timedelta(0)).any():
        raise ValueError(
            f"{int((video_age < pd.Timedelta(0)).sum())} impressions show a video before its upload_time "
            "(request_time < upload_time): the loop served videos that did not exist yet"
        )
    served = served.assign(is_fresh=video_age < FRESH_VIDEO_AGE,
                           is_cold=_shown_before(served, prior_impressions) < COLD_VIDEO_IMPRESSIONS)
    rows = [
        {"arm": arm, "day": day, **_one_arm_day(group, _catalog_size_on(catalog_size, day), n_creators)}
        for (arm, day), group in served.groupby(["arm", "day"], sort=True)
    ]
    return pd.DataFrame(rows, columns=["arm", "day", *DAILY_COUNTS, *DAILY_METRICS])


def _one_arm_day(served_day: pd.DataFrame, catalog_size: int, n_creators: int) -> dict[str, float]:
    users = served_day["user_id"].nunique()
    distinct_videos = served_day["video_id"].nunique()
    if distinct_videos > catalog_size:
        raise ValueError(f"{distinct_videos} distinct videos were shown but the catalog size is {catalog_size}")
    last = last_lists(served_day)
    overlap = list_overlap(last["user_id"].to_numpy(), last["video_id"].to_numpy())
    return {
        "users": users,
        "requests": served_day["request_id"].nunique(),
        "impressions": len(served_day),
        "watch_seconds_per_user": float(served_day["watch_seconds"].sum() / users),
        "click_through": float(served_day["clicked"].mean()),
        "true_precision_at_k": float(served_day.groupby("request_id")["truly_relevant"].mean().mean()),
        "catalog_coverage": distinct_videos / catalog_size,
        "creator_exposure_gini": creator_exposure_gini(served_day["creator_id"].to_numpy(), n_creators),
        "fresh_share": float(served_day["is_fresh"].mean()),
        "cold_share": float(served_day["is_cold"].mean()),
        "collapsed_user_share": overlap.collapsed_user_share,
        "mean_jaccard": overlap.mean_jaccard,
    }


def _shown_before(served: pd.DataFrame, prior_impressions: pd.Series | None) -> np.ndarray:
    """Per served row, how often its video was shown before the row's day: before the loop
    (`prior_impressions`) and on the loop's earlier days, over all arms."""
    per_day = served.groupby(["day", "video_id"]).size().unstack(fill_value=0).sort_index()
    before = per_day.cumsum() - per_day  # shown on days strictly earlier
    earlier = before.stack().rename("shown").reindex(pd.MultiIndex.from_arrays(
        [served["day"].to_numpy(), served["video_id"].to_numpy()])).to_numpy(dtype=np.int64)
    if prior_impressions is None:
        return earlier
    return earlier + prior_impressions.reindex(served["video_id"].to_numpy()).fillna(0).to_numpy(dtype=np.int64)


def _catalog_size_on(catalog_size: int | pd.Series | Mapping[int, int], day: int) -> int:
    if isinstance(catalog_size, Integral) and not isinstance(catalog_size, bool):
        size = int(catalog_size)
    elif isinstance(catalog_size, pd.Series | Mapping):
        if day not in catalog_size:
            raise ValueError(f"catalog_size has no entry for day {day} (it covers days {sorted(catalog_size.keys())})")
        size = int(catalog_size[day])
    else:
        raise ValueError(f"catalog_size must be an int or a Series indexed by day, got {type(catalog_size).__name__}")
    if size < 1:
        raise ValueError(f"catalog_size on day {day} must be positive, got {size}")
    return size


def per_user_primary(served: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, user): total watch seconds over the whole run and the number of days served.

    These are the units the arms' difference resamples. A user served in two arms means the
    assignment leaked, and no difference between the arms is then meaningful: that raises."""
    _check_served(served, _PER_USER_INPUT_COLUMNS)
    per_user = (
        served.groupby(["arm", "user_id"], sort=True)
        .agg(total_watch_seconds=("watch_seconds", "sum"), days_served=("day", "nunique"))
        .reset_index()
    )
    arms_per_user = per_user.groupby("user_id")["arm"].nunique()
    in_several_arms = arms_per_user.index[arms_per_user > 1]
    if len(in_several_arms):
        raise ValueError(
            f"{len(in_several_arms)} users were served in more than one arm (e.g. user_id "
            f"{list(in_several_arms[:5])}): arms must hold different users"
        )
    per_user["total_watch_seconds"] = per_user["total_watch_seconds"].astype(np.float64)
    return per_user


def arm_difference(
    per_user: pd.DataFrame,
    arm_a: str,
    arm_b: str,
    per: Literal["served_day", "user"] = "served_day",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Arm A's mean watch seconds minus arm B's, with its two-sample bootstrap interval.

    per="served_day" (the default) divides each arm's total watch seconds by its users' served
    days: the daily primary metric pooled over the run, in the same units the report plots, and
    not spread by how many days each user happened to arrive. per="user" is the mean over users of
    their total watch seconds; choose it if arrivals can depend on the arm (a policy that brings
    users back more often), which per="served_day" would not count."""
    missing = {"arm", "total_watch_seconds", "days_served"} - set(per_user.columns)
    if missing:
        raise ValueError(f"per_user lacks columns {sorted(missing)} (build it with per_user_primary)")
    if arm_a == arm_b:
        raise ValueError(f"arm_difference compares two different arms, got {arm_a!r} twice")
    if per not in ("served_day", "user"):
        raise ValueError(f"per must be 'served_day' or 'user', got {per!r}")
    arms = dict(list(per_user.groupby("arm")))
    for arm in (arm_a, arm_b):
        if arm not in arms:
            raise ValueError(f"arm {arm!r} has no users in per_user (arms present: {sorted(arms)})")
    a, b = arms[arm_a], arms[arm_b]
    return two_sample_difference(
        a["total_watch_seconds"].to_numpy(),
        b["total_watch_seconds"].to_numpy(),
        a["days_served"].to_numpy() if per == "served_day" else None,
        b["days_served"].to_numpy() if per == "served_day" else None,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )


def _check_served(served: pd.DataFrame, required: Sequence[str]) -> None:
    if not isinstance(served, pd.DataFrame):
        raise ValueError(f"served must be a pandas DataFrame, got {type(served).__name__}")
    missing = [column for column in required if column not in served.columns]
    if missing:
        raise ValueError(f"served frame lacks columns {missing} (it has {list(served.columns)})")
    if served.empty:
        raise ValueError("served frame is empty: the loop served no items, so there is nothing to measure")
    for column in ("request_time", "upload_time"):
        if column in required and not pd.api.types.is_datetime64_any_dtype(served[column]):
            raise ValueError(f"served column {column!r} must be datetime64, got {served[column].dtype}")
