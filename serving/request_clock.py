"""What "now" is when a request is ranked: the time its recency features are measured from.

In production the logs are live, so now is the wall clock. The embedded default data is
simulated in the past; measured from today, every "days since last watch" would be months, far
outside anything the ranker was trained on. The "data" clock instead stops at the end of the
online store's last materialization: the moment the served features describe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC

from feast import FeatureStore

from feature_repo.features import REQUEST_ENGAGEMENT
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)


def materialized_until(store: FeatureStore, view_name: str = REQUEST_ENGAGEMENT) -> float | None:
    """Unix seconds of the latest materialization end of `view_name`, None if it never ran.

    The default view holds the state users' next requests see, stamped just after the log's end.
    """
    ends = [
        end if end.tzinfo is not None else end.replace(tzinfo=UTC)  # Feast keeps naive times as UTC
        for _, end in store.get_feature_view(view_name).materialization_intervals
    ]
    return max(ends).timestamp() if ends else None


def request_clock(settings: VidrecSettings, store: FeatureStore) -> Callable[[], float]:
    """The clock serving reads a request's time from (Unix seconds), per `settings.serving_clock`."""
    if settings.effective_serving_clock == "wall":
        return time.time
    until = materialized_until(store)
    if until is None:
        logger.warning("serving_clock 'data' but the online store was never materialized: using the wall clock")
        return time.time
    logger.info("serving_clock 'data': requests are ranked as of %s (Unix seconds)", until)
    return lambda: until
