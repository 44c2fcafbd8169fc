"""The simulated users of a closed loop: who shows up each day, and how they answer a served list.

They are the simulator's own users (vidrec.simulator): the World is rebuilt from the seed the
home's raw log was simulated with, so the loop's users have the tastes that produced the logs the
models were trained on, and answer with the simulator's behaviour model (position-biased clicks
on the true affinity, then watch time, likes). The service never sees the World; the loop reads
it to respond and, for evaluation only, to say which served videos were truly relevant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.rawlog import RawManifest
from vidrec.simulator import SimulationConfig, World, click_probability, rebuild_world, watch_outcomes

SECONDS = np.timedelta64(1_000_000, "us")


@dataclass(frozen=True)
class Served:
    """One day's served lists, one row per shown item (raw-log ids, 1-based)."""

    user_id: np.ndarray
    video_id: np.ndarray
    position: np.ndarray
    request_index: np.ndarray  # which request (0-based, in the day's order) showed the item
    request_offset_seconds: np.ndarray  # per request: seconds after the day's clock it was made


def simulation_config(raw_dir: Path) -> SimulationConfig:
    """The configuration the home's raw log was simulated with (its raw manifest)."""
    manifest = RawManifest.read(raw_dir)
    if manifest is None or manifest.source != "simulator":
        raise ValueError(f"the raw log at {raw_dir} was not written by `vidrec simulate`: a closed loop needs "
                         "the simulator's ground truth to answer as its users")
    known = set(SimulationConfig.__dataclass_fields__)
    return SimulationConfig(**{name: value for name, value in manifest.parameters.items() if name in known})


class SimulatedUsers:
    def __init__(self, world: World, seed: int):
        self.world = world
        self.rng = np.random.default_rng(seed)

    @classmethod
    def of_home(cls, raw_dir: Path, seed: int) -> SimulatedUsers:
        return cls(rebuild_world(simulation_config(raw_dir)), seed)

    @property
    def user_count(self) -> int:
        return len(self.world.user_taste)

    def active_today(self) -> np.ndarray:
        """The raw-log ids of the users who come today (each with their own daily probability)."""
        return np.flatnonzero(self.rng.random(self.user_count) < self.world.user_activity) + 1

    def respond(self, served: Served, clock: np.datetime64) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(outcome per served row, watch rows): whether each shown video was clicked, and the
        watch each click became, stamped after the request that showed it. Every served video must
        be one the World drew (the loop checks before it asks)."""
        users, videos = served.user_id - 1, served.video_id - 1
        affinity = self.world.affinity(users, videos)
        clicked = self.rng.random(len(users)) < click_probability(affinity, served.position)
        shown_at = clock + (served.request_offset_seconds[served.request_index] * 1e6).astype("timedelta64[us]")
        click_times = (shown_at[clicked] + (served.position[clicked] * 20 + self.rng.uniform(2, 15, clicked.sum()))
                       .astype(np.int64) * SECONDS)
        watches = watch_outcomes(self.world, self.rng, users[clicked], videos[clicked], click_times, affinity[clicked])
        outcome = pd.DataFrame({"clicked": clicked, "watch_seconds": 0.0, "liked": False})
        outcome.loc[clicked, "watch_seconds"] = watches["watch_seconds"].to_numpy()
        outcome.loc[clicked, "liked"] = watches["liked"].to_numpy()
        return outcome, watches

    def truly_relevant(self, served: Served, clock: np.datetime64, top_n: int) -> np.ndarray:
        """Per served row: whether the video is among the user's `top_n` truest matches of the videos
        uploaded by `clock` (ground truth, for evaluation only)."""
        available = np.flatnonzero(self.world.video_upload_time <= clock)
        users = np.unique(served.user_id)
        affinity = self.world.affinity_matrix(users - 1, available)
        nth = min(top_n, len(available)) - 1
        thresholds = -np.partition(-affinity, nth, axis=1)[:, nth]
        threshold_of = dict(zip(users.tolist(), thresholds.tolist(), strict=True))
        row_affinity = self.world.affinity(served.user_id - 1, served.video_id - 1)
        return row_affinity >= np.array([threshold_of[user] for user in served.user_id.tolist()])
