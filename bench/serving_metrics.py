"""The service's own view of a load run: its `vidrec_*` Prometheus metrics, summarised.

The service exports per-stage latency histograms, fallback counters and candidates per source on
BentoML's `/metrics`. bench/serving_load.py scrapes it before and after the run and summarises the
difference, so the figures cover the run alone, not the service's whole life. Histograms become
count, mean and p50/p99 estimates (interpolated within buckets as Prometheus' `histogram_quantile`
does, so they are only as fine as the buckets); counters and gauges become their values.
Parsing uses `prometheus_client`'s text-format parser (a dependency of bentoml), not a regex.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "vidrec_"
LabelSet = tuple[tuple[str, str], ...]


@dataclass
class Histogram:
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count
    sum: float = 0.0
    count: float = 0.0

    def quantile(self, q: float) -> float | None:
        """Prometheus' estimate: linear within the bucket holding rank q·count; None when empty.

        A rank in the +Inf bucket returns the highest finite bound, as Prometheus does.
        """
        if self.count <= 0 or not self.buckets:
            return None
        bounds = sorted(self.buckets)
        rank = q * self.buckets[bounds[-1]]
        lower_bound, lower_count = 0.0, 0.0
        for bound in bounds:
            cumulative = self.buckets[bound]
            if cumulative >= rank:
                if math.isinf(bound):
                    finite = [b for b in bounds if not math.isinf(b)]
                    return finite[-1] if finite else None
                if cumulative == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (cumulative - lower_count)
            lower_bound, lower_count = bound, cumulative
        return bounds[-1]

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            buckets={bound: count - earlier.buckets.get(bound, 0.0) for bound, count in self.buckets.items()},
            sum=self.sum - earlier.sum,
            count=self.count - earlier.count,
        )


@dataclass
class MetricSnapshot:
    """The `vidrec_*` series of one scrape: histograms, and counter/gauge samples by sample name."""

    histograms: dict[tuple[str, LabelSet], Histogram] = field(default_factory=dict)
    values: dict[tuple[str, LabelSet], float] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # sample name -> counter | gauge

    def minus(self, earlier: MetricSnapshot) -> MetricSnapshot:
        """What happened between `earlier` and this scrape (gauges keep their latest value)."""
        histograms = {key: h.minus(earlier.histograms.get(key, Histogram())) for key, h in self.histograms.items()}
        values = {
            key: value - earlier.values.get(key, 0.0) if self.kinds.get(key[0]) == "counter" else value
            for key, value in self.values.items()
        }
        return MetricSnapshot(histograms=histograms, values=values, kinds=dict(self.kinds))


def parse_metrics(text: str, prefix: str = PREFIX) -> MetricSnapshot:
    """The series whose family name starts with `prefix`; a malformed exposition raises ValueError."""
    snapshot = MetricSnapshot()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        if family.type == "histogram":
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                histogram = snapshot.histograms.setdefault((family.name, labels), Histogram())
                if sample.name.endswith("_bucket"):
                    histogram.buckets[float(sample.labels["le"])] = sample.value
                elif sample.name.endswith("_sum"):
                    histogram.sum = sample.value
                elif sample.name.endswith("_count"):
                    histogram.count = sample.value
        elif family.type in ("counter", "gauge"):
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                snapshot.kinds[sample.name] = family.type
                snapshot.values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return snapshot


def _labels(labels: LabelSet) -> str:
    return ",".join(f"{k}={v}" for k, v in labels)


def summarise_metrics(snapshot: MetricSnapshot) -> dict:
    """JSON-ready: one row per histogram series (count, mean, p50, p99) and per counter/gauge series."""
    histograms = []
    for (name, labels), histogram in sorted(snapshot.histograms.items()):
        histograms.append(
            {
                "name": name,
                "labels": dict(labels),
                "count": histogram.count,
                "mean": histogram.sum / histogram.count if histogram.count > 0 else None,
                "p50": histogram.quantile(0.5),
                "p99": histogram.quantile(0.99),
            }
        )
    values = [
        {"name": name, "labels": dict(labels), "kind": snapshot.kinds.get(name), "value": value}
        for (name, labels), value in sorted(snapshot.values.items())
    ]
    return {"histograms": histograms, "values": values}


def _scaled(name: str, value: float | None) -> str:
    """Seconds histograms read in milliseconds; anything else in its own unit."""
    if value is None:
        return "–"
    return f"{value * 1000:.2f} ms" if name.endswith("_seconds") else f"{value:.2f}"


def metrics_markdown(summary: dict) -> str:
    if not summary["histograms"] and not summary["values"]:
        return f"(no {PREFIX}* series on /metrics)"
    lines = ["| histogram | labels | count | mean | p50 est. | p99 est. |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {row['name']} | {_labels(tuple(row['labels'].items()))} | {row['count']:g} | "
        f"{_scaled(row['name'], row['mean'])} | "
        f"{_scaled(row['name'], row['p50'])} | {_scaled(row['name'], row['p99'])} |"
        for row in summary["histograms"]
    ]
    lines += ["", "| counter / gauge | labels | value |", "|---|---|---|"]
    lines += [f"| {row['name']} | {_labels(tuple(row['labels'].items()))} | {row['value']:g} |"
              for row in summary["values"]]
    return "\n".join(lines)
