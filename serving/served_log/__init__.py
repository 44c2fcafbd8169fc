"""What the service logs of each answer, off the request path.

The served-impression log: every item /recommend serves becomes an `impressions` row of the raw
log, written by the service itself, so the next pipeline run trains on what was actually shown and
off-policy evaluation finds each slot's propensity. Read `rows` (what a row of a served item
holds) then `log` (the writer).

The served-feature log: for a sampled share of ranked requests, the ranker's inputs of each served
item, as it was fed them, for the skew checks that gate promotion. Read `feature_files` (the
files) then `feature_log` (the writer); `feature_retention` says how long a day is kept.

Both writers share `background`: bounded, written by a thread, never waited for.
"""

from serving.served_log.feature_log import ServedFeatureLog
from serving.served_log.log import ServedImpressionLog
from serving.served_log.rows import served_impressions

__all__ = ["ServedFeatureLog", "ServedImpressionLog", "served_impressions"]
