"""Hot reload: follow the registry's `champion` aliases without restarting the service.

A daemon thread polls the registry every `model_poll_seconds`. When any champion moved, it loads
the whole new set (every artifact, checked to belong together) beside the serving one, builds a
new `Recommender` on it, and swaps one reference. A request reads that reference once, at its
start, and uses that recommender to the end: no request fails during a swap or mixes versions,
and each response names the versions that answered it. A set that fails to load is logged and
counted, and the old one keeps serving; the next poll tries again.

Between reloads, `extend` serves a grown copy of the serving set the same way (serving.uploads
adds new videos to the live index so), and tasks given to `run_beside` start and stop with the
watcher's thread, so whoever starts the watcher (the service) runs them without knowing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from serving.loading import ChampionSetInconsistent
from serving.recommender import Recommender, ServingModels
from serving.serving_metrics import serving_metrics

logger = logging.getLogger(__name__)


class BackgroundTask(Protocol):
    """Something that runs in a thread of its own beside the watcher's (see `run_beside`)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


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
        # held by a reload from resolving to its swap, and by `extend`: one change at a time
        self._poll_lock = threading.Lock()
        self._tasks: list[BackgroundTask] = []
        self._started = False

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
            except Exception:  # keep serving the old set
                logger.exception("loading champions %s failed; the serving set stays %s", versions, self.versions)
                serving_metrics().model_reloads.labels(outcome="failed").inc()
                return False
            staged = (self._swap_moment() if self._serving is not None else time.time(), recommender)
            self._pending = staged
            if self.poll_seconds > 0:
                self._stop.wait(max(0.0, staged[0] - time.time()))
            self._activate(staged)
            return True

    def extend(self, grow: Callable[[ServingModels], ServingModels]) -> bool:
        """Serve `grow(serving models)` from now on, unless it returns them unchanged; True if swapped.

        Copy-on-write, as a reload: `grow` builds a new set beside the serving one (never
        writing it: requests are reading it), a new recommender is built on it, and one
        reference assignment swaps it in; a request keeps the set it started with. Never during
        a reload: a reload that is loading or staged finishes first, and is then what grows (it
        keeps its versions, so the next poll does not reload it)."""
        with self._poll_lock:
            serving = self._serving
            if serving is None:
                return False
            models = grow(serving.models)
            if models is serving.models:
                return False
            recommender = self._build(models)
            with self._swap_lock:
                self._serving = recommender
            return True

    def run_beside(self, task: BackgroundTask) -> None:
        """Start `task` when this watcher starts (now, if it has) and stop it when it stops."""
        self._tasks.append(task)
        if self._started:
            task.start()

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
        """Poll in a daemon thread until `stop()` (a poll interval of 0 disables reloading), and
        start the tasks run beside (with or without reloading)."""
        if self._started:
            return
        self._started = True
        for task in self._tasks:
            task.start()
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        # Poll on wall-clock multiples of the interval: every worker process of the service then
        # polls at the same moments, and a promotion reaches all of them within one load time.
        while not self._stop.wait(self.poll_seconds - time.time() % self.poll_seconds):
            self.poll()
