"""Two stored runs of the same method on the same holdout, paired user by user: did a change help?

    .venv/bin/python bench/retrieval_compare.py A_DIR B_DIR [--dataset simulated] \
        [--method candidate_generator] [--metrics recall@50 ndcg@10 ...]

A_DIR and B_DIR are `--results-dir`s of bench/retrieval.py (or bench/retrieval_all.sh) run with
different settings, e.g. `--query-at cutoff` against `--query-at last-interaction`, both with
`--holdout validation` so the decision is taken without reading test. Each metric is printed for
both runs with its user-level bootstrap 95% interval and the paired difference A − B with its
interval; "A better" / "B better" only when that interval excludes 0. Both runs must score the
same users (the same split): a mismatch is an error, not a silent reindex.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.baselines.harness import MethodRun
from models.evaluation.bootstrap import bootstrap_interval, paired_difference

DEFAULT_METRICS = ("recall@50", "recall@100", "ndcg@10", "mrr")


def load_run(results_dir: Path, dataset: str, method: str) -> MethodRun:
    path = results_dir / dataset / f"{method}.pkl"
    if not path.is_file():
        raise SystemExit(f"no stored run {path}; expected a --results-dir of bench/retrieval.py holding "
                         f"{dataset}/{method}.pkl")
    return pickle.loads(path.read_bytes())


def comparison_table(a: MethodRun, b: MethodRun, metrics, slice: str = "all", resamples: int = 2000) -> str:
    """Markdown: one row per metric with A, B and the paired A − B, each with its 95% interval."""
    lines = ["| metric | A | B | A − B | verdict |", "|---|---|---|---|---|"]
    for metric in metrics:
        ours, theirs = a.per_user(metric, slice), b.per_user(metric, slice)
        if not ours.index.equals(theirs.index):
            raise SystemExit(f"the two runs score different users on {slice!r} ({len(ours)} vs {len(theirs)}); "
                             "compare runs of the same split and holdout")
        difference = paired_difference(ours.to_numpy(), theirs.to_numpy(), resamples=resamples)
        verdict = "A better" if difference.low > 0 else "B better" if difference.high < 0 else "no difference"
        cells = [bootstrap_interval(values.to_numpy(), resamples=resamples).format() for values in (ours, theirs)]
        lines.append(f"| {metric} | {cells[0]} | {cells[1]} | {difference.format()} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a_dir", type=Path)
    parser.add_argument("b_dir", type=Path)
    parser.add_argument("--dataset", default="simulated")
    parser.add_argument("--method", default="candidate_generator")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    args = parser.parse_args()
    a, b = (load_run(directory, args.dataset, args.method) for directory in (args.a_dir, args.b_dir))
    print(f"{args.dataset} / {args.method}: A = {args.a_dir} ({len(a.seeds)} seeds, {a.params}), "
          f"B = {args.b_dir} ({len(b.seeds)} seeds, {b.params}); user-level bootstrap 95% intervals\n")
    print(comparison_table(a, b, args.metrics))


if __name__ == "__main__":
    main()
