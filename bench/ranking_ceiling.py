"""What the simulated data allows a ranker: the benchmark's rows scored by the simulator's own
ground truth, whole and with its latent part hidden.

Three ceilings, scored on the same rows as the models (never fit, never tuned, one "seed"):
- `EXPECTED_WATCH` ("ground truth: expected watch seconds"): each row's worth by the behaviour
  model, P(click | true affinity) × E[seconds watched | click] (vidrec.simulator
  .expected_watch_seconds). It orders a request as a scorer that knew the truth but, like every
  model here, not the position would: the pairwise loss's ceiling.
- `EXPECTED_WATCH_WITHOUT_STYLE` ("ground truth without the style term"): the same, with the
  affinity's latent user × video term (`style`) replaced by its mean over the scored rows, so
  only the user's category taste and the video's quality are known exactly. A model's features
  (watch counts by category and creator, the video's click and watch rates) describe these two;
  only a collaborative signal (embeddings learnt from who watched what) can learn the style term.
  The gap between the two rows is what that signal is worth at most.
- `AFFINITY` ("ground truth: affinity"): the true affinity alone, which decides the click up to
  position: GAUC's ceiling.
They are not baselines: no model could reach them, and "beats" is never claimed against them. They
say where the table's models sit between popularity and what is knowable, which a table of models
close to each other cannot.

`python bench/ranking_ceiling.py --frame-dir EXPORT` prints them with user-bootstrap intervals on
the validation rows (the holdout is dropped before anything is scored); `--split holdout` scores
the holdout instead, a read of it by these scorers only (and the two below), which chooses nothing.
bench/ranking.py adds them to its holdout table.

After them the script prints two scorers *fit* on the true terms (bench/ranking_true_terms.py: LR
and HGB given the behaviour model's own inputs), fit on the fit rows (validation) or on all train
rows (`--split holdout`), with their paired differences: whether a non-linear form beats a linear
one once the inputs are right.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation.bootstrap import DEFAULT_RESAMPLES, bootstrap_interval, mean_over_seeds, paired_difference
from models.ranking.evaluate import user_components
from vidrec.simulator import affinity_terms_of_pairs, expected_watch_seconds

from ranking_protocol import Scored, score_fixed
from ranking_true_terms import BOOSTED, LINEAR, fit_on_true_terms

EXPECTED_WATCH = "ground truth: expected watch seconds"
EXPECTED_WATCH_WITHOUT_STYLE = "ground truth without the style term: expected watch seconds"
AFFINITY = "ground truth: affinity"
CEILINGS = (EXPECTED_WATCH, EXPECTED_WATCH_WITHOUT_STYLE, AFFINITY)


def is_ceiling(model: str) -> bool:
    return model in CEILINGS


def ceiling_scores(frame: pd.DataFrame, ground_truth_dir: Path) -> dict[str, np.ndarray]:
    """Ceiling name → one score per row of `frame` (its user_id, video_id, duration_seconds)."""
    terms = affinity_terms_of_pairs(ground_truth_dir, frame["user_id"].to_numpy(), frame["video_id"].to_numpy())
    duration = frame["duration_seconds"].to_numpy(np.float64)
    if not np.all(np.isfinite(duration) & (duration > 0)):
        raise ValueError("the frame's duration_seconds must be positive everywhere to score the expected watch")
    affinity = terms["taste"] + terms["style"] + terms["quality"]
    without_style = terms["taste"] + terms["style"].mean() + terms["quality"]
    return {EXPECTED_WATCH: expected_watch_seconds(affinity, duration),
            EXPECTED_WATCH_WITHOUT_STYLE: expected_watch_seconds(without_style, duration),
            AFFINITY: affinity}


def score_ceilings(holdout: pd.DataFrame, ground_truth_dir: Path, touches: list[dict]) -> list[Scored]:
    """Each ceiling scored on the holdout, as a deterministic model (one seed); each read is a
    holdout touch like a model's."""
    return [score_fixed(name, holdout, scores, touches)
            for name, scores in ceiling_scores(holdout, ground_truth_dir).items()]


def ceiling_table(frame: pd.DataFrame, ground_truth_dir: Path, resamples: int) -> str:
    """The ceilings on `frame` with user-bootstrap 95 % intervals, as a Markdown table."""
    lines = ["| scorer | GAUC [95% CI] | pairwise loss ↓ [95% CI] |", "|---|---|---|"]
    for name, scores in ceiling_scores(frame, ground_truth_dir).items():
        components = user_components(frame, scores)
        gauc = bootstrap_interval(components["gauc_numerator"], components["gauc_weight"], resamples)
        loss = bootstrap_interval(components["pairwise_wrong_weight"], components["pairwise_pair_weight"], resamples)
        lines.append(f"| {name} | {gauc.format()} | {loss.format()} |")
    return "\n".join(lines)


def _seed_mean_components(frame: pd.DataFrame, per_seed_scores: list[np.ndarray]) -> pd.DataFrame:
    """User components averaged over seeds (every seed scores the same rows, so the same users)."""
    per_seed = [user_components(frame, scores) for scores in per_seed_scores]
    return pd.DataFrame({column: mean_over_seeds([components[column] for components in per_seed])
                         for column in per_seed[0].columns}, index=per_seed[0].index)


def true_term_tables(fit_rows: pd.DataFrame, rows: pd.DataFrame, ground_truth_dir: Path, resamples: int) -> str:
    """LR and HGB fit on `fit_rows`' true terms, scored on `rows` (user-bootstrap 95 % intervals,
    HGB's user terms averaged over its seeds), then their paired differences: HGB − LR, and
    LR − the expected-watch ceiling (pairwise loss: < 0 means the first orders better)."""
    fitted = fit_on_true_terms(fit_rows, rows, ground_truth_dir)
    components = {name: _seed_mean_components(rows, scores) for name, scores in fitted.items()}
    components[EXPECTED_WATCH] = user_components(rows, ceiling_scores(rows, ground_truth_dir)[EXPECTED_WATCH])
    lines = ["| scorer fit on the true terms | fits (seeds) | GAUC [95% CI] | pairwise loss ↓ [95% CI] |",
             "|---|---|---|---|"]
    for name, scores in fitted.items():
        gauc = bootstrap_interval(components[name]["gauc_numerator"], components[name]["gauc_weight"], resamples)
        loss = bootstrap_interval(components[name]["pairwise_wrong_weight"], components[name]["pairwise_pair_weight"],
                                  resamples)
        lines.append(f"| {name} | {len(scores)} | {gauc.format()} | {loss.format()} |")
    lines += ["", "| paired difference | GAUC [95% CI] | pairwise loss [95% CI] |", "|---|---|---|"]
    for first, second in ((BOOSTED, LINEAR), (LINEAR, EXPECTED_WATCH)):
        a, b = components[first], components[second]
        gauc = paired_difference(a["gauc_numerator"], b["gauc_numerator"], a["gauc_weight"], b["gauc_weight"],
                                 resamples)
        loss = paired_difference(a["pairwise_wrong_weight"], b["pairwise_wrong_weight"], a["pairwise_pair_weight"],
                                 b["pairwise_pair_weight"], resamples)
        lines.append(f"| {first} − {second} | {gauc.format()} | {loss.format()} |")
    return "\n".join(lines)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--frame-dir", type=Path, required=True,
                        help="what `bench/ranking.py --export` wrote from a simulated home (with its ground truth)")
    parser.add_argument("--split", choices=("validation", "holdout"), default="validation",
                        help="the rows scored: validation (the last 10%% of train by time) or the holdout")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples of users")
    args = parser.parse_args()
    if args.resamples < 1:
        parser.error("--resamples must be at least 1")
    return args


def main() -> None:
    from ranking_data import exported_frame, exported_ground_truth
    from ranking_features import benchmark_frame
    from ranking_variants import validation_splits

    args = _parse_args()
    ground_truth = exported_ground_truth(args.frame_dir)
    if ground_truth is None:
        sys.exit(f"{args.frame_dir} holds no ground truth: export it with `bench/ranking.py --export` from a home "
                 "whose raw logs `vidrec simulate` wrote")
    frame, inputs = exported_frame(args.frame_dir)
    frame, config = benchmark_frame(frame, inputs)
    if args.split == "holdout":
        fit_rows = frame[frame["split"] == "train"]
        rows = frame[frame["split"] == "holdout"]
        note = "a read of the holdout by the ground truth and the scorers fit on it"
    else:
        splits = validation_splits(frame[frame["split"] == "train"], config)
        fit_rows, rows, note = splits.fit, splits.validation, "the holdout was dropped before scoring"
    print(f"{args.split}: {len(rows)} rows of {rows['user_id'].nunique()} users ({note})\n")
    print(ceiling_table(rows, ground_truth, args.resamples))
    print(f"\nfit on {len(fit_rows)} rows before them:\n")
    print(true_term_tables(fit_rows, rows, ground_truth, args.resamples))

if __name__ == "__main__":
    main()
