"""The served-impression log: every item /recommend serves becomes an `impressions` row of the raw
log, written by the service itself, so the next pipeline run trains on what was actually shown and
off-policy evaluation finds each slot's propensity.

Read `rows` (what a row of a served item holds) then `log` (the bounded, background writer).
"""

from serving.served_log.log import ServedImpressionLog
from serving.served_log.rows import served_impressions

__all__ = ["ServedImpressionLog", "served_impressions"]
