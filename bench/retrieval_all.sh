#!/usr/bin/env bash
# The retrieval benchmark with every method in a process of its own, for a machine with many cores
# (and a GPU for the neural methods); then one report per dataset from the stored runs.
#
#   bench/retrieval_all.sh RESULTS_DIR [DEVICE] [bench/retrieval.py options ...]
#
# PYTHON (default .venv/bin/python) runs the bench; METHOD_TIMEOUT (seconds, default none) stops a
# method that runs too long, and its row is then missing from the report. Reports land in
# RESULTS_DIR/<dataset>-report.md, each method's log in RESULTS_DIR/<dataset>-<method>.log.
set -u
results=${1:?usage: bench/retrieval_all.sh RESULTS_DIR [DEVICE] [bench options ...]}
device=${2:-cpu}
shift $(( $# < 2 ? $# : 2 ))
python=${PYTHON:-.venv/bin/python}
limit=${METHOD_TIMEOUT:-0}
datasets=${DATASETS:-"simulated ml-100k"}
methods=${METHODS:-"most_popular item_knn ease als bpr sasrec candidate_generator"}
mkdir -p "$results"
for dataset in $datasets; do
  for method in $methods; do
    timeout "$limit" "$python" bench/retrieval.py --dataset "$dataset" --methods "$method" --device "$device" \
      --results-dir "$results" --no-mlflow "$@" > "$results/$dataset-$method.log" 2>&1 &
  done
done
wait
for dataset in $datasets; do
  "$python" bench/retrieval.py --dataset "$dataset" --report-from "$results" --no-mlflow "$@" \
    > "$results/$dataset-report.md" 2> "$results/$dataset-report.log"
done
