"""Calibration of probabilistic heads: Platt scaling and isotonic regression, picked by validation
log loss, with sample weights so that negative down-sampling is undone.

A frame that keeps every click and a share r of non-clicks, each kept non-click weighing 1/r,
fitted with those weights, yields probabilities whose weighted mean matches the full log's base
rate, which is what serving needs (the down-sampled rate would be 1/r times too optimistic).

`fit_calibrator` expects its rows in time order: it fits both methods on the first
(1 − validation_share) of them, keeps the one with the lower weighted log loss on the rest, and
refits the winner on all rows. Serving applies a calibrator with numpy only (no sklearn).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluation.ranking_metrics import log_loss

EPSILON = 1e-6


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -60.0, 60.0)))


@dataclass
class PlattCalibrator:
    """p = sigmoid(slope · logit + intercept)."""

    slope: float = 1.0
    intercept: float = 0.0
    method = "platt"

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e6, max_iter=1000)
        model.fit(logits.reshape(-1, 1), labels.astype(int), sample_weight=weights / weights.mean())
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return np.clip(_sigmoid(self.slope * logits + self.intercept), EPSILON, 1 - EPSILON)

    def to_dict(self) -> dict:
        return {"method": self.method, "slope": self.slope, "intercept": self.intercept}


@dataclass
class IsotonicCalibrator:
    """Non-decreasing piecewise-linear map logit → probability through (thresholds, levels)."""

    thresholds: np.ndarray
    levels: np.ndarray
    method = "isotonic"

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(logits, labels.astype(np.float64), sample_weight=weights)
        return cls(np.asarray(model.X_thresholds_, np.float64), np.asarray(model.y_thresholds_, np.float64))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(logits, self.thresholds, self.levels), EPSILON, 1 - EPSILON)

    def to_dict(self) -> dict:
        return {"method": self.method, "thresholds": self.thresholds.tolist(), "levels": self.levels.tolist()}


Calibrator = PlattCalibrator | IsotonicCalibrator
METHODS = {"platt": PlattCalibrator, "isotonic": IsotonicCalibrator}


def calibrator_from_dict(payload: dict) -> Calibrator:
    if payload["method"] == "platt":
        return PlattCalibrator(payload["slope"], payload["intercept"])
    if payload["method"] == "isotonic":
        return IsotonicCalibrator(np.asarray(payload["thresholds"]), np.asarray(payload["levels"]))
    raise ValueError(f"unknown calibration method {payload['method']!r}; expected one of {sorted(METHODS)}")


def fit_calibrator(logits, labels, sample_weight=None, validation_share: float = 0.3) -> tuple[Calibrator, dict]:
    """(calibrator, {"method", "validation_log_loss_platt", "validation_log_loss_isotonic"})."""
    logits = np.asarray(logits, np.float64).ravel()
    labels = np.asarray(labels).astype(np.float64).ravel()
    weights = np.ones_like(logits) if sample_weight is None else np.asarray(sample_weight, np.float64).ravel()
    if not 0 < (weights * labels).sum() < weights.sum():
        raise ValueError("calibration rows need both positive and negative labels")
    cut = int(len(logits) * (1 - validation_share))
    fit_rows, validation_rows = slice(0, cut), slice(cut, None)
    report: dict = {}
    usable = 0 < labels[fit_rows].sum() < cut and 0 < labels[validation_rows].sum() < len(logits) - cut
    for name, method in METHODS.items():
        if usable:
            candidate = method.fit(logits[fit_rows], labels[fit_rows], weights[fit_rows])
            report[f"validation_log_loss_{name}"] = log_loss(
                labels[validation_rows], candidate(logits[validation_rows]), sample_weight=weights[validation_rows])
    best = min(METHODS, key=lambda name: report.get(f"validation_log_loss_{name}", 0.0 if name == "platt" else 1.0))
    report["method"] = best
    return METHODS[best].fit(logits, labels, weights), report


def reliability_diagram_png(before: pd.DataFrame, after: pd.DataFrame, title: str) -> bytes:
    """PNG bytes of a reliability diagram from two `reliability_bins` tables (before/after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    limit = max(before["mean_prediction"].max(), before["mean_label"].max(),
                after["mean_prediction"].max(), after["mean_label"].max(), 1e-3) * 1.05
    axis.plot([0, limit], [0, limit], color="grey", linestyle="--", linewidth=1, label="perfect")
    axis.plot(before["mean_prediction"], before["mean_label"], marker="o", label="raw")
    axis.plot(after["mean_prediction"], after["mean_label"], marker="s", label="calibrated")
    axis.set(xlim=(0, limit), ylim=(0, limit), xlabel="mean predicted probability",
             ylabel="observed frequency", title=title)
    axis.legend(loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
