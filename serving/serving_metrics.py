"""The service's own Prometheus metrics, exported on BentoML's `/metrics` beside its defaults.

Built on first use, not at import: a BentoML worker switches prometheus_client to multiprocess
mode (PROMETHEUS_MULTIPROC_DIR) during its start-up, and a metric created before that would
count into a private registry that `/metrics` never reads. Created inside a worker, every
worker's observations add up on one `/metrics`. All names start with `vidrec_`, the prefix
`bench/serving_load.py` reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# Stage latencies of a recommendation request run from ~0.1 ms (a cached read) to tens of ms.
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.5)


@dataclass(frozen=True)
class ServingMetrics:
    stage_seconds: object  # Histogram[stage]
    fallbacks: object  # Counter[stage, fallback]
    over_budget: object  # Counter[stage]
    candidates: object  # Counter[source]
    model_reloads: object  # Counter[outcome]
    served_impressions: object  # Counter[outcome]
    served_impressions_dropped: object  # Counter[reason]
    served_features: object  # Counter[outcome]
    served_features_dropped: object  # Counter[reason]


@functools.cache
def serving_metrics() -> ServingMetrics:
    import prometheus_client  # here, after the worker chose the multiprocess mode

    return ServingMetrics(
        stage_seconds=prometheus_client.Histogram(
            "vidrec_stage_seconds",
            "Time spent in one stage of a /recommend request (user_features, retrieval:<source>, "
            "candidate_features, ranking, total).",
            ["stage"],
            buckets=STAGE_BUCKETS,
        ),
        fallbacks=prometheus_client.Counter(
            "vidrec_fallbacks",
            "Requests in which a stage fell back (the response lists the same in `degraded`).",
            ["stage", "fallback"],
        ),
        over_budget=prometheus_client.Counter(
            "vidrec_over_budget",
            "Compute stages that finished past their budget (not abandoned; see serving.request_trace).",
            ["stage"],
        ),
        candidates=prometheus_client.Counter(
            "vidrec_candidates",
            "Candidates passed to ranking, by the retrieval source that nominated them.",
            ["source"],
        ),
        model_reloads=prometheus_client.Counter(
            "vidrec_model_reloads",
            "Champion model-set swaps tried by the hot-reload poller, by outcome.",
            ["outcome"],
        ),
        served_impressions=prometheus_client.Counter(
            "vidrec_served_impressions",
            "Served items the served-impression log wrote to the raw log (logged: a new row or one "
            "completing a client's impression; duplicate: already logged with the service's record).",
            ["outcome"],
        ),
        served_impressions_dropped=prometheus_client.Counter(
            "vidrec_served_impressions_dropped",
            "Served items the served-impression log did not write, by reason (queue_full: its bound "
            "was reached, e.g. while the raw log could not be written; shutdown: still unwritten when "
            "the worker stopped; invalid_id: a user or video id the raw log cannot hold; error: a "
            "write that failed for another reason than the raw log being unavailable).",
            ["reason"],
        ),
        served_features=prometheus_client.Counter(
            "vidrec_served_features",
            "Served items of sampled requests whose ranker inputs the served-feature log wrote.",
            ["outcome"],
        ),
        served_features_dropped=prometheus_client.Counter(
            "vidrec_served_features_dropped",
            "Served items of sampled requests the served-feature log did not write, by reason "
            "(queue_full, shutdown, invalid_id, error: as for the served-impression log).",
            ["reason"],
        ),
    )
