"""How well offline evaluation predicts the online result: each arm's clicks per request estimated
from every other arm's log (IPS, SNIPS, DM, DR; models/evaluation/off_policy.py), beside what the
arm measured online.

The logging arm's rows carry the propensity its service logged (serving/policy/exploration.py:
the probability of that video at that slot, given the slots above). The target arm's lists are
its answers to the same requests, asked as shadow requests (the loop's `shadows`): a target row's
propensity is 1 where its list holds the logged video at the logged position. A stochastic target
(one that explores) is represented by one draw per request, which estimates its propensity without
bias. The reward model of DM and DR is the logging arm's click-through per position: deliberately
plain, so DR's correction term has work to do.

Two known limits, both visible in the report: a logging arm without exploration logs propensity 1
everywhere, so a target row it never showed has no logged row at all and IPS/SNIPS see only where
the two arms agree (support deficiency: the estimates fall short); and the slot-conditional
propensity is not the item-position marginal the estimators assume, which biases them down as
exploration grows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.evaluation.bootstrap import bootstrap_interval
from models.evaluation.off_policy import direct_method, doubly_robust, ips, snips

ESTIMATORS = ("IPS", "SNIPS", "DM", "DR")


def offline_vs_online(served: pd.DataFrame, shadows: pd.DataFrame, arms: list[str], seed: int = 0) -> pd.DataFrame:
    """One row per (target arm, logging arm, estimator): estimate, low, high, and the target's
    online clicks per request with its interval; `arm` is the target."""
    rows = []
    for target in arms:
        online = _online_clicks_per_request(served[served["arm"] == target], seed)
        for logging in (arm for arm in arms if arm != target):
            logged_rows = served[served["arm"] == logging]
            target_rows = shadows[(shadows["target_arm"] == target)
                                  & shadows["request_id"].isin(logged_rows["request_id"])]
            for estimator, interval in _estimates(logged_rows, target_rows, seed).items():
                rows.append({"arm": target, "logged_arm": logging, "estimator": f"{estimator} from {logging}",
                             "estimate": interval.estimate, "low": interval.low, "high": interval.high,
                             "online_value": online.estimate, "online_low": online.low,
                             "online_high": online.high, "requests": interval.units})
    return pd.DataFrame(rows)


def _estimates(logged_rows: pd.DataFrame, target_rows: pd.DataFrame, seed: int) -> dict:
    click_through = logged_rows.groupby("position")["clicked"].mean()
    shown = set(zip(target_rows["request_id"], target_rows["position"], target_rows["video_id"], strict=True))
    logged = pd.DataFrame({
        "request_id": logged_rows["request_id"].to_numpy(),
        "position": logged_rows["position"].to_numpy(),
        "reward": logged_rows["clicked"].to_numpy(float),
        "logged_propensity": logged_rows["propensity"].to_numpy(float),
        "target_propensity": [float(key in shown) for key in zip(
            logged_rows["request_id"], logged_rows["position"], logged_rows["video_id"], strict=True)],
        "reward_prediction": logged_rows["position"].map(click_through).to_numpy(float),
    })
    predictions = pd.DataFrame({
        "request_id": target_rows["request_id"].to_numpy(),
        "position": target_rows["position"].to_numpy(),
        "reward_prediction": target_rows["position"].map(click_through).fillna(0.0).to_numpy(float),
    })
    return {"IPS": ips(logged, seed=seed), "SNIPS": snips(logged, seed=seed),
            "DM": direct_method(predictions, seed=seed), "DR": doubly_robust(logged, predictions, seed=seed)}


def _online_clicks_per_request(rows: pd.DataFrame, seed: int):
    per_request = rows.groupby("request_id")["clicked"].sum().to_numpy(np.float64)
    return bootstrap_interval(per_request, seed=seed)
