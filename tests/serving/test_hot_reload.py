"""The champion watcher swaps a whole model set at once, and only a set that loads."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from serving.hot_reload import ChampionWatcher
from serving.loading import ChampionSetInconsistent


@dataclass
class LoadedSet:
    """What the watcher needs of a Recommender: the versions of the models it answers with."""

    versions: dict[str, str]


@dataclass
class Serving:
    models: LoadedSet


@dataclass
class Registry:
    champions: dict[str, str]
    broken: set[str] = field(default_factory=set)  # versions whose files fail to load
    promoting: bool = False
    loads: int = 0

    def resolve(self) -> dict[str, str]:
        if self.promoting:
            raise ChampionSetInconsistent("index and generator disagree")
        return dict(self.champions)

    def load(self, versions: dict[str, str]) -> LoadedSet:
        self.loads += 1
        if set(versions.values()) & self.broken:
            raise OSError("truncated model file")
        return LoadedSet(versions)


def _watcher(registry: Registry) -> ChampionWatcher:
    return ChampionWatcher(registry.resolve, registry.load, Serving, poll_seconds=0)


def test_first_poll_loads_the_champions_and_unchanged_champions_are_not_reloaded():
    registry = Registry({"ranker": "1", "generator": "1"})
    watcher = _watcher(registry)

    assert watcher.poll() is True
    assert watcher.versions == {"ranker": "1", "generator": "1"}
    assert watcher.poll() is False
    assert registry.loads == 1


def test_a_moved_alias_swaps_the_whole_set_and_in_flight_requests_keep_theirs():
    registry = Registry({"ranker": "1", "generator": "1"})
    watcher = _watcher(registry)
    watcher.poll()
    in_flight = watcher.current  # what a request read at its start

    registry.champions["ranker"] = "2"
    assert watcher.poll() is True

    assert watcher.current.models.versions == {"ranker": "2", "generator": "1"}
    assert in_flight.models.versions == {"ranker": "1", "generator": "1"}


def test_a_set_that_fails_to_load_leaves_the_old_one_serving_and_is_retried():
    registry = Registry({"ranker": "1"})
    watcher = _watcher(registry)
    watcher.poll()

    registry.champions["ranker"] = "2"
    registry.broken.add("2")
    assert watcher.poll() is False
    assert watcher.versions == {"ranker": "1"}

    registry.broken.clear()
    assert watcher.poll() is True
    assert watcher.versions == {"ranker": "2"}


def test_a_half_done_promotion_is_waited_out():
    registry = Registry({"ranker": "1"})
    watcher = _watcher(registry)
    registry.promoting = True

    assert watcher.poll() is False
    assert watcher.current is None
    assert "promotion in progress" in watcher.not_ready_reason

    registry.promoting = False
    assert watcher.poll() is True


def test_no_champion_yet_says_what_to_do():
    def resolve():
        raise LookupError("no 'champion' version of registered model 'vidrec-ranker'; run `vidrec pipeline` first")

    watcher = ChampionWatcher(resolve, lambda versions: None, Serving, poll_seconds=0)

    assert watcher.poll() is False
    assert "vidrec pipeline" in watcher.not_ready_reason


def test_requests_arriving_after_the_swap_moment_get_the_new_set_even_before_the_watcher_wakes(monkeypatch):
    """The moment is read off the wall clock; the test holds that clock still (a real one moves on
    under load between two statements and made this test flaky), so only the watcher's sleep is real."""
    import threading
    import time
    import types

    import serving.hot_reload as hot_reload

    wall_clock = {"now": 1000.1}
    monkeypatch.setattr(hot_reload, "time", types.SimpleNamespace(time=lambda: wall_clock["now"]))
    registry = Registry({"ranker": "1"})
    watcher = ChampionWatcher(registry.resolve, registry.load, Serving, poll_seconds=0.4)
    watcher.poll()
    registry.champions["ranker"] = "2"

    class AsleepUntilStopped(threading.Event):  # the watcher thread oversleeps the moment (GIL-starved)
        def wait(self, timeout=None):
            return super().wait(None)

    watcher._stop = AsleepUntilStopped()
    polling = threading.Thread(target=watcher.poll)
    polling.start()
    while watcher._pending is None:  # loaded and staged for the next multiple of 0.4 s
        time.sleep(0.005)
    moment = watcher._pending[0]
    assert moment == pytest.approx(1000.4)
    assert watcher.current.models.versions == {"ranker": "1"}  # arrived before the moment

    wall_clock["now"] = moment
    assert polling.is_alive()  # the watcher has not woken yet
    assert watcher.current.models.versions == {"ranker": "2"}  # arrived at it

    watcher._stop.set()
    polling.join(timeout=10)
    assert watcher.versions == {"ranker": "2"}
