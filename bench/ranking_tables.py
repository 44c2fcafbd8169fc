"""The ranking benchmark's report: user-bootstrap intervals of each model's seed-averaged
holdout metrics, paired against our ranker, and the Markdown tables and lines that show them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluation.bootstrap import Interval, bootstrap_interval, mean_over_seeds, paired_difference
from models.evaluation.tuning import TuningResult
from models.ranking.config import PROBABILITY_HEADS

from ranking_ceiling import is_ceiling
from ranking_models import OURS
from ranking_protocol import Scored
from ranking_results import Outcome


@dataclass
class Summary:
    gauc: Interval
    pairwise_loss: Interval
    gauc_advantage: Interval | None = None  # ours − this model (> 0: ours ranks better)
    loss_advantage: Interval | None = None  # this model − ours (> 0: ours ranks better)

    @property
    def ours_beats(self) -> bool:
        return bool(self.gauc_advantage and self.loss_advantage and self.gauc_advantage.low > 0
                    and self.loss_advantage.low > 0)


def _seed_averaged(scored: Scored) -> pd.DataFrame:
    """Per-user components with numerators averaged over seeds (denominators are the model's
    and seed's common weights: checked)."""
    first = scored.components[0]
    for other in scored.components[1:]:
        if not (np.allclose(other["gauc_weight"], first["gauc_weight"])
                and np.allclose(other["pairwise_pair_weight"], first["pairwise_pair_weight"])):
            raise ValueError(f"{scored.model}: per-user weights differ between seeds; the components are misaligned")
    averaged = first.copy()
    for column in ("gauc_numerator", "pairwise_wrong_weight"):
        averaged[column] = mean_over_seeds([components[column] for components in scored.components])
    return averaged


def summarise(results: Sequence[Scored], resamples: int) -> dict[str, Summary]:
    averaged = {scored.model: _seed_averaged(scored) for scored in results}
    ours = averaged.get(OURS)
    summaries = {}
    for name, components in averaged.items():
        if ours is not None and not components.index.equals(ours.index):
            raise ValueError(f"{name}'s users are not ours in the same order")
        summary = Summary(
            bootstrap_interval(components["gauc_numerator"], components["gauc_weight"], resamples),
            bootstrap_interval(components["pairwise_wrong_weight"], components["pairwise_pair_weight"], resamples))
        if ours is not None and name != OURS:
            summary.gauc_advantage = paired_difference(
                ours["gauc_numerator"], components["gauc_numerator"], ours["gauc_weight"], components["gauc_weight"],
                resamples)
            summary.loss_advantage = paired_difference(
                components["pairwise_wrong_weight"], ours["pairwise_wrong_weight"], components["pairwise_pair_weight"],
                ours["pairwise_pair_weight"], resamples)
        summaries[name] = summary
    return summaries


def _spread(values: Sequence[float]) -> str:
    finite = [value for value in values if np.isfinite(value)]
    if not finite:
        return "—"
    if len(finite) == 1:
        return f"{finite[0]:.4f}"
    return f"{statistics.mean(finite):.4f} ± {statistics.stdev(finite):.4f}"


def results_table(results: Sequence[Scored], summaries: dict[str, Summary]) -> str:
    lines = ["| model | seeds | GAUC [95% CI] | pairwise loss ↓ [95% CI] | AUC click | NDCG@10 | train s |",
             "|---|---|---|---|---|---|---|"]
    for scored in results:
        summary = summaries[scored.model]
        auc, ndcg = (_spread([report.get(key, float("nan")) for report in scored.reports])
                     for key in ("auc_clicked", "ndcg_at_10_watch_seconds"))
        lines.append(f"| {scored.model} | {len(scored.seeds)} | {summary.gauc.format()} | "
                     f"{summary.pairwise_loss.format()} | {auc} | {ndcg} | "
                     f"{statistics.mean(scored.train_seconds):.0f} |")
    return "\n".join(lines)


def comparison_table(summaries: dict[str, Summary]) -> str:
    lines = [f"| model | GAUC: {OURS} − model [95% CI] | pairwise loss: model − {OURS} [95% CI] | {OURS} beats it |",
             "|---|---|---|---|"]
    for name, summary in summaries.items():
        if summary.gauc_advantage is None:
            continue
        verdict = "— (a ceiling)" if is_ceiling(name) else "yes" if summary.ours_beats else "no"
        lines.append(f"| {name} | {summary.gauc_advantage.format()} | {summary.loss_advantage.format()} | "
                     f"{verdict} |")
    return "\n".join(lines)


SPREAD_METRICS = (("gauc_clicked", "GAUC"), ("pairwise_loss_watch_weighted", "pairwise loss"),
                  ("auc_clicked", "AUC click"))


def seed_table(results: Sequence[Scored]) -> str:
    lines = ["| model | metric | per seed | min | max |", "|---|---|---|---|---|"]
    for scored in results:
        if len(scored.seeds) < 2:
            continue
        for key, title in SPREAD_METRICS:
            values = [report[key] for report in scored.reports]
            listed = ", ".join(f"{value:.4f}" for value in values)
            lines.append(f"| {scored.model} | {title} | {listed} | {min(values):.4f} | {max(values):.4f} |")
    return "\n".join(lines)


def calibration_table(scored: Scored) -> str:
    """Our heads' ECE (over seeds) beside the base rate, their calibration in the large (the
    figure a constant's ECE measures), a constant predictor at the training rows' base rate, and
    whether the head has enough holdout positives to count."""
    lines = ["| head | holdout positives | base rate | ECE | ECE / base rate "
             "| in the large: abs(mean prediction − base rate) | constant (train rate) ECE | counts toward a bar |",
             "|---|---|---|---|---|---|---|---|"]
    first = scored.reports[0]
    for head in PROBABILITY_HEADS:
        if f"ece_{head}" not in first:
            continue
        eces = [report[f"ece_{head}"] for report in scored.reports]
        base = first[f"base_rate_{head}"]
        relative = statistics.mean(eces) / base if base > 0 else float("nan")
        counts = "yes" if first[f"ece_counts_toward_bar_{head}"] else "no (fewer than 200 positives)"
        # (results written before the figure existed lack it: shown as "—")
        in_the_large = [report.get(f"calibration_in_the_large_{head}", float("nan")) for report in scored.reports]
        lines.append(f"| {head} | {first[f'positives_{head}']:.0f} | {base:.4f} | {_spread(eces)} | {relative:.2f} | "
                     f"{_spread(in_the_large)} | {first[f'ece_constant_{head}']:.4f} | {counts} |")
    return "\n".join(lines)


def tuning_table(tunings: dict[str, TuningResult], selection: str) -> str:
    lines = [f"| model | trials | rounds | best hyper-parameters | validation {selection_label(selection)} | "
             "widened edges |",
             "|---|---|---|---|---|---|"]
    for model, tuning in tunings.items():
        point = ", ".join(f"{key} {_short(value)}" for key, value in tuning.best_params.items())
        widened = "; ".join(tuning.widened) or "none"
        lines.append(f"| {model} | {len(tuning.trials)} | {tuning.rounds} | {point} | {tuning.best_value:.5f} | "
                     f"{widened} |")
    return "\n".join(lines)


def selection_label(selection: str) -> str:
    """How a selection metric is named in tables ("log_loss" was always printed as "loss")."""
    return {"log_loss": "loss", "gauc": "GAUC", "pairwise_loss": "pairwise loss"}.get(selection, selection)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def report_of(outcome: Outcome, summaries: dict[str, Summary]) -> str:
    ours = next(scored for scored in outcome.results if scored.model == OURS)
    tables = {
        "tuning (validation rows)": tuning_table(outcome.tunings, selection_of(outcome.setup)),
        "holdout: seed-averaged, user-bootstrap 95% intervals": results_table(outcome.results, summaries),
        f"paired differences against {OURS} (> 0: {OURS} ranks better)": comparison_table(summaries),
        "spread over seeds": seed_table(outcome.results),
        f"{OURS}: calibration on the holdout": calibration_table(ours),
    }
    return "\n\n".join(f"### {title}\n\n{table}" for title, table in tables.items())


def selection_of(setup: dict) -> str:
    """The run's selection metric; results written before the option existed used the log loss."""
    return setup.get("selection_metric", "log_loss")


def report_header(setup: dict) -> str:
    return (f"dataset: {setup['dataset']} from {setup['source']}; {setup['rows']} rows, {setup['holdout_rows']} "
            f"holdout ({setup['holdout_users']} users); seeds {setup['seeds']}; {setup['trials']} trials per search "
            f"round, every model's trial picked by validation {selection_label(selection_of(setup))}; "
            f"torch threads {setup['threads']}; ranker trained on {setup['device']}"
            + ("; every model given the click factors" if setup.get("click_factors") else ""))


def report_footer(setup: dict, touches: Sequence[dict]) -> str:
    times = [touch["at"] for touch in touches if "at" in touch]
    read = f"; holdout read {len(touches)} times, {min(times)} to {max(times)} (UTC)" if times else ""
    return (f"bundle.score on {setup['latency_rows']} rows, median of 200 calls: {setup['latency_ms']:.2f} ms; "
            f"benchmark wall time {setup['wall_seconds']:.0f} s{read}")
