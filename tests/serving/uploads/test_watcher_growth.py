"""Between reloads the champion watcher serves a grown copy of its set, swapped in as a reload is,
and runs the upload follower beside it."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

from serving.hot_reload import ChampionWatcher


@dataclass(frozen=True)
class LoadedSet:
    """What the watcher needs of a model set (its versions), plus the uploads it holds."""

    versions: dict[str, str]
    uploads: tuple[int, ...] = ()


@dataclass
class Serving:
    models: LoadedSet


def _holding(video_id: int):
    def grow(models: LoadedSet) -> LoadedSet:
        if video_id in models.uploads:
            return models
        return dataclasses.replace(models, uploads=(*models.uploads, video_id))
    return grow


def _watcher(champions: dict[str, str], load=None) -> ChampionWatcher:
    return ChampionWatcher(lambda: dict(champions), load or LoadedSet, Serving, poll_seconds=0)


def test_a_grown_set_swaps_in_whole_keeping_its_versions_and_requests_in_flight_keep_theirs():
    champions = {"generator": "1"}
    watcher = _watcher(champions)
    watcher.poll()
    in_flight = watcher.current

    assert watcher.extend(_holding(42)) is True

    assert watcher.current.models == LoadedSet({"generator": "1"}, uploads=(42,))
    assert in_flight.models.uploads == ()
    assert watcher.poll() is False  # same versions: growing is no reason to reload


def test_growth_that_changes_nothing_swaps_nothing():
    watcher = _watcher({"generator": "1"})
    watcher.poll()
    watcher.extend(_holding(42))
    serving = watcher.current

    assert watcher.extend(_holding(42)) is False
    assert watcher.current is serving


def test_nothing_grows_before_a_set_serves():
    watcher = _watcher({"generator": "1"})

    assert watcher.extend(_holding(42)) is False
    assert watcher.current is None


def test_growth_waits_for_a_reload_in_progress_and_then_grows_the_new_set():
    champions = {"generator": "1"}
    loading, release = threading.Event(), threading.Event()

    def slow_load(versions: dict[str, str]) -> LoadedSet:
        if versions["generator"] == "2":
            loading.set()
            release.wait(5)
        return LoadedSet(versions)

    watcher = _watcher(champions, slow_load)
    watcher.poll()
    champions["generator"] = "2"
    reload = threading.Thread(target=watcher.poll)
    reload.start()
    loading.wait(5)
    grown: list[bool] = []
    growth = threading.Thread(target=lambda: grown.append(watcher.extend(_holding(42))))
    growth.start()
    time.sleep(0.1)
    assert grown == []  # waiting: the set being loaded would otherwise replace the grown one

    release.set()
    reload.join()
    growth.join()

    assert grown == [True]
    assert watcher.current.models == LoadedSet({"generator": "2"}, uploads=(42,))


class Task:
    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


def test_tasks_run_beside_start_and_stop_with_the_watcher_even_when_reloading_is_off():
    watcher = _watcher({"generator": "1"})  # poll_seconds=0: no reload thread
    before, after = Task(), Task()
    watcher.run_beside(before)
    assert before.running is False

    watcher.start()
    watcher.run_beside(after)
    assert before.running and after.running

    watcher.stop()
    assert not before.running and not after.running
