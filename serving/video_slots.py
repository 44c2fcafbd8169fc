"""Video id → row of the in-process video feature cache, looked up for a whole request at once.

A request asks for some 500 videos; a Python dict lookup per id cost more than the rest of
gathering their features. Ids below `DENSE_LIMIT` (every catalog the importers and the simulator
write) live in one int64 array indexed by id, so a request's slots are one numpy take; larger
ids (an upload with an id from another system) fall back to a dict.
"""

from __future__ import annotations

import numpy as np

DENSE_LIMIT = 1 << 24  # 16M ids: a 128 MiB table at most, grown only as far as the largest id seen
NO_SLOT = -1


class VideoSlots:
    def __init__(self) -> None:
        self._dense = np.full(0, NO_SLOT, dtype=np.int64)
        self._sparse: dict[int, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, video_id: int) -> bool:
        return self.lookup(np.array([video_id], dtype=np.int64))[0] != NO_SLOT

    def lookup(self, video_ids: np.ndarray) -> np.ndarray:
        """Slots of `video_ids` (int64), NO_SLOT where not cached."""
        dense = self._dense  # one array, even while another thread grows it
        inside = (video_ids >= 0) & (video_ids < len(dense))
        slots = np.full(len(video_ids), NO_SLOT, dtype=np.int64)
        slots[inside] = dense[video_ids[inside]]
        if self._sparse:
            for position in np.flatnonzero(~inside):
                slots[position] = self._sparse.get(int(video_ids[position]), NO_SLOT)
        return slots

    def assign(self, video_ids: np.ndarray, first_slot: int) -> None:
        """Give new `video_ids` (unique, not cached yet) the slots first_slot, first_slot + 1, …

        Call after the feature rows at those slots exist: a reader that finds a slot must find
        its row."""
        slots = np.arange(first_slot, first_slot + len(video_ids), dtype=np.int64)
        dense_ids = (video_ids >= 0) & (video_ids < DENSE_LIMIT)
        if dense_ids.any():
            largest = int(video_ids[dense_ids].max())
            dense = self._dense
            if largest >= len(dense):  # grow to twice the need, copied and swapped in whole
                grown = np.full(min(DENSE_LIMIT, max(2 * (largest + 1), 1024)), NO_SLOT, dtype=np.int64)
                grown[: len(dense)] = dense
                dense = grown
            dense[video_ids[dense_ids]] = slots[dense_ids]
            self._dense = dense
        for video_id, slot in zip(video_ids[~dense_ids].tolist(), slots[~dense_ids].tolist(), strict=True):
            self._sparse[video_id] = slot
        self._count += len(video_ids)

    def video_ids(self) -> list[int]:
        """Every cached video id (in no particular order)."""
        dense = self._dense
        return np.flatnonzero(dense != NO_SLOT).tolist() + list(self._sparse)
