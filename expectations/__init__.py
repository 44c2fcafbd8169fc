"""Great Expectations suites and the training-serving skew check, as plain functions.

`validation` runs a suite over a pandas frame and returns a `ValidationOutcome`; `raw_logs` and
`training_frames` build one suite per table or frame; `skew` compares feature distributions.
The orchestrator turns outcomes into Dagster asset-check results.
"""
