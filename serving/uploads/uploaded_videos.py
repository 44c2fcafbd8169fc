"""The uploads a worker serves beyond its trained index: their catalog rows, kept for its lifetime.

Every model set this worker serves gets these videos added to its index (serving.uploads.live_index),
the set a reload brings included, and the video-feature cache answers their static features from
here until the online store learns of them at the next pipeline run.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd

from feature_repo.engagement import SECONDS_PER_DAY
from serving.served_list import VIDEO_AGE_COLUMN
from serving.uploads.video_files import empty_videos
from vidrec.schema import VIDEOS

# The video features an upload has before it was ever shown: its raw columns, which the
# video_stats feature view carries under the same names (dbt's video_features_daily passes them
# through), and its age. Its counters (impressions, watches, ...) stay missing until the store has them.
STATIC_FEATURES = ("creator_id", "category", "duration_seconds")


class UploadedVideos:
    """Catalog rows (the VIDEOS columns) of the videos accepted as uploads, one row per video.

    Written by one thread (the upload follower), read by any: the table is replaced whole on
    each addition, so a reader holds either the old one or the new one.
    """

    def __init__(self) -> None:
        self._catalog = empty_videos().set_index("video_id", drop=False)
        self._add_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._catalog)

    def __contains__(self, video_id: int) -> bool:
        return int(video_id) in self._catalog.index

    def add(self, videos: pd.DataFrame) -> np.ndarray:
        """Accept the rows of `videos` (valid ones, serving.uploads.validation) not accepted
        before; returns the ids added."""
        with self._add_lock:
            catalog = self._catalog
            new = videos[~videos["video_id"].isin(catalog.index)]
            if len(new):
                rows = new[list(VIDEOS.schema.names)].set_index("video_id", drop=False)
                self._catalog = pd.concat([catalog, rows]) if len(catalog) else rows
            return new["video_id"].to_numpy(np.int64)

    def catalog(self) -> pd.DataFrame:
        """Every accepted upload's row (VIDEOS columns), in the order they were accepted."""
        return self._catalog.reset_index(drop=True)

    def video_features(self, video_ids: Sequence[int], now_unix_seconds: float) -> dict[str, list]:
        """{feature name: one value per id} of the features uploads have before they were ever
        shown, None for an id that is not an upload. `video_age_days` is measured at
        `now_unix_seconds` (the request clock), never below 0, as the daily mart measures it."""
        rows = self._catalog.reindex(pd.Index(np.asarray(video_ids, dtype=np.int64)))
        features = {
            name: [None if pd.isna(value) else value for value in rows[name].tolist()] for name in STATIC_FEATURES
        }
        upload_seconds = rows["upload_time"].to_numpy("datetime64[us]").astype(np.int64) / 1e6
        ages = np.maximum((now_unix_seconds - upload_seconds) / SECONDS_PER_DAY, 0.0)
        features[VIDEO_AGE_COLUMN] = [None if missing else float(age)
                                      for age, missing in zip(ages.tolist(), rows["upload_time"].isna().tolist())]
        return features
