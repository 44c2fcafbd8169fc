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
        self._serving: Recommender | None = None
        # A loaded set waiting for its moment: (Unix time it starts answering, recommender).
        self._pending: tuple[float, Recommender] | None = None
        self._swap_lock = threading.Lock()
        self.not_ready_reason = "models not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    @property
    def current(self) -> Recommender | None:
        """The recommender for a request arriving now. A staged set takes over for every request
        that arrives from its moment on, whichever thread notices first (the watcher thread
        may be starved of the GIL for milliseconds under load): in every worker process, a
        request arriving before the moment gets the old set and one arriving after it the new."""
        pending = self._pending
        if pending is not None and time.time() >= pending[0]:
            self._activate(pending)
        return self._serving

    @property
    def versions(self) -> dict[str, str]:
        serving = self._serving
        return dict(serving.models.versions) if serving is not None else {}

    def poll(self) -> bool:
        """Load and swap in the champions if they differ from what serves; True if swapped."""
        with self._poll_lock:
            try:
                versions = self._resolve()
            except ChampionSetInconsistent as reason:
                logger.info("champions not reloaded yet: %s", reason)
                if self._serving is None:
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
            if self._serving is not None and versions == self._serving.models.versions:
                return False
            try:
                recommender = self._build(self._load(versions))
            except Exception:  # noqa: BLE001 - keep serving the old set
                logger.exception("loading champions %s failed; the serving set stays %s", versions, self.versions)
                serving_metrics().model_reloads.labels(outcome="failed").inc()
                return False
            staged = (self._swap_moment() if self._serving is not None else time.time(), recommender)
            self._pending = staged
            if self.poll_seconds > 0:
                self._stop.wait(max(0.0, staged[0] - time.time()))
            self._activate(staged)
            return True

    def _swap_moment(self) -> float:
        """The next wall-clock multiple of the poll interval: every worker process loads the new
        set after the same poll and switches at the same moment, so answers switch versions once
        rather than alternating between workers for as long as their loads differ."""
        now = time.time()
        return now if self.poll_seconds <= 0 else now + self.poll_seconds - now % self.poll_seconds

    def _activate(self, staged: tuple[float, Recommender]) -> None:
        """Swap in a staged set (once, by whichever thread gets here first)."""
        with self._swap_lock:
            if self._pending is not staged:
                return
            previous = self.versions
            self._serving = staged[1]  # the swap: one reference assignment
            self._pending = None
        self.not_ready_reason = ""
        self._on_swap()
        serving_metrics().model_reloads.labels(outcome="swapped").inc()
        logger.info("serving champions %s (were %s)", self.versions, previous or "none")

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
