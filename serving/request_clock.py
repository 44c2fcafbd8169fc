"""What "now" is when a request is ranked: the time its recency features are measured from.

In production the logs are live, so now is the wall clock. The embedded default data is
simulated in the past; measured from today, every "days since last watch" would be months, far
outside anything the ranker was trained on. The "data" clock instead stops at the end of the
online store's last materialization: the moment the served features describe.

The latest end over *every* feature view, not the engagement log's alone: the daily snapshots are
stamped at the midnight after the day they cover, later than the log's last event, and a clock
stopped at the log's end would serve them before their time, so the ranker would be fed values a
point-in-time join at the request's time does not give (the served-skew gate measured it: every
video's daily features differed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC

from feast import FeatureStore

from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)


def materialized_until(store: FeatureStore, view_name: str | None = None) -> float | None:
    """Unix seconds of the latest materialization end of `view_name` (None: of any feature view),
    None if it never ran."""
    views = store.list_feature_views() if view_name is None else [store.get_feature_view(view_name)]
    ends = [
        end if end.tzinfo is not None else end.replace(tzinfo=UTC)  # Feast keeps naive times as UTC
        for view in views for _, end in view.materialization_intervals
    ]
    return max(ends).timestamp() if ends else None


def request_clock(settings: VidrecSettings, store: FeatureStore,
                  on_advance: Callable[[], None] | None = None) -> Callable[[], float]:
    """The clock serving reads a request's time from (Unix seconds), per `settings.serving_clock`;
    `on_advance` runs when the data clock moves to a later materialization."""
    if settings.effective_serving_clock == "wall":
        return time.time
    until = materialized_until(store)
    if until is None:
        logger.warning("serving_clock 'data' but the online store was never materialized: using the wall clock")
        return time.time
    logger.info("serving_clock 'data': requests are ranked as of %s (Unix seconds)", until)
    return DataClock(store, until, settings.model_poll_seconds, on_advance)


class DataClock:
    """The "data" clock: the end of the online store's last materialization, re-read at most every
    `reread_seconds` (0: never).

    It follows the store rather than the models: a refresh that re-materializes the features but
    promotes no new model leaves the loaded models serving, and a clock stopped at their load would
    rank tomorrow's requests as of yesterday (the closed loop, orchestration.closed_loop, runs day
    after day on this clock). It never goes back: a materialization of an older range does not
    rewind it.

    When it moves, `on_advance` runs before the time is returned: serving re-reads its cached
    video features there, so the request that first sees the new time, and every one after it,
    is fed the features of that time (cached ones would be up to a refresh round older).
    """

    def __init__(self, store: FeatureStore, until: float, reread_seconds: float,
                 on_advance: Callable[[], None] | None = None):
        self._store = store
        self._until = until
        self._reread_seconds = reread_seconds
        self._on_advance = on_advance
        self._read_at = time.monotonic()

    @property
    def until(self) -> float:
        """The materialization end last read (no re-read)."""
        return self._until

    def __call__(self) -> float:
        if self._reread_seconds and time.monotonic() - self._read_at >= self._reread_seconds:
            self._read_at = time.monotonic()
            try:
                self._store.refresh_registry()
                latest = materialized_until(self._store)
            except Exception:  # a registry mid-write: keep the last reading, try again next time
                logger.warning("serving_clock 'data': could not re-read the materializations", exc_info=True)
                latest = None
            if latest is not None and latest > self._until:
                logger.info("serving_clock 'data': the store moved on; requests are ranked as of %s", latest)
                if self._on_advance is not None:
                    try:
                        self._on_advance()
                    except Exception:  # the store failed mid-refresh: the refresher's rounds catch up
                        logger.warning("serving_clock 'data': the re-read on advance failed", exc_info=True)
                self._until = latest
        return self._until
