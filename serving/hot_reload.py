"""Hot reload: follow the registry's `champion` aliases without restarting the service.

A daemon thread polls the registry every `model_poll_seconds`. When any champion moved, it loads
the whole new set (every artifact, checked to belong together) beside the serving one, builds a
new `Recommender` on it, and swaps one reference. A request reads that reference once, at its
start, and uses that recommender to the end: no request fails during a swap or mixes versions,
and each response names the versions that answered it. A set that fails to load is logged and
counted, and the old one keeps serving; the next poll tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from serving.loading import ChampionSetInconsistent
from serving.recommender import Recommender, ServingModels
from serving.serving_metrics import serving_metrics

logger = logging.getLogger(__name__)


class ChampionWatcher:
    """Holds the serving `Recommender` and replaces it when the champions move.

    `resolve()` gives {model name: version} of the champions now; `load(versions)` loads that
    set; `build(models)` makes the recommender that serves it; `on_swap()` runs after each swap.
    (The service passes the registry functions of serving.loading; tests pass their own.)
    """

    def __init__(
        self,
        resolve: Callable[[], dict[str, str]],
        load: Callable[[dict[str, str]], ServingModels],
        build: Callable[[ServingModels], Recommender],
        poll_seconds: float,
        on_swap: Callable[[], None] | None = None,
    ):
        self._resolve = resolve
        self._load = load
        self._build = build
        self.poll_seconds = poll_seconds
        self._on_swap = on_swap or (lambda: None)
        self.current: Recommender | None = None
        self.not_ready_reason = "models not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    @property
    def versions(self) -> dict[str, str]:
        current = self.current
        return dict(current.models.versions) if current is not None else {}

    def poll(self) -> bool:
        """Load and swap in the champions if they differ from what serves; True if swapped."""
        with self._poll_lock:
            try:
                versions = self._resolve()
            except ChampionSetInconsistent as reason:
                logger.info("champions not reloaded yet: %s", reason)
                if self.current is None:
                    self.not_ready_reason = f"promotion in progress: {reason}"
                return False
            except LookupError as reason:
                self.not_ready_reason = str(reason)
                logger.error("service not ready: %s", reason)
                return False
            except Exception as error:  # noqa: BLE001 - a registry outage must not stop serving what is loaded
                logger.error("could not read the champions from the registry: %r", error)
                serving_metrics().model_reloads.labels(outcome="registry_error").inc()
                return False
            if self.current is not None and versions == self.current.models.versions:
                return False
            try:
                recommender = self._build(self._load(versions))
            except Exception:  # noqa: BLE001 - keep serving the old set
                logger.exception("loading champions %s failed; the serving set stays %s", versions, self.versions)
                serving_metrics().model_reloads.labels(outcome="failed").inc()
                return False
            previous = self.versions
            if self.current is not None:
                self._wait_for_the_swap_moment()
            self.current = recommender  # the swap: one reference assignment
            self.not_ready_reason = ""
            self._on_swap()
            serving_metrics().model_reloads.labels(outcome="swapped").inc()
            logger.info("serving champions %s (were %s)", versions, previous or "none")
            return True

    def _wait_for_the_swap_moment(self) -> None:
        """Swap on the next wall-clock multiple of the poll interval: every worker process loads
        the new set after the same poll and swaps at the same moment, so answers switch versions
        once rather than alternating between workers for as long as their loads differ."""
        if self.poll_seconds > 0:
            self._stop.wait(self.poll_seconds - time.time() % self.poll_seconds)

    def start(self) -> None:
        """Poll in a daemon thread until `stop()`; a poll interval of 0 disables reloading."""
        if self.poll_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        # Poll on wall-clock multiples of the interval: every worker process of the service then
        # polls at the same moments, and a promotion reaches all of them within one load time.
        while not self._stop.wait(self.poll_seconds - time.time() % self.poll_seconds):
            self.poll()
