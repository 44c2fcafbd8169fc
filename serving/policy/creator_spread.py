"""Per-creator bookkeeping of one list being built: the cap, and keeping same-creator videos apart.

Greedy placement alone can paint itself into a corner: with creators A A A and B B, where B's
videos score higher, greedy places B A B A and then must put the last A next to an A, although
A B A B A exists. So before each slot the policy asks which creators it can place there such that
the rest of the list can still be filled with no two neighbours from one creator ("separable").

Counting decides that without search. Let m_c be how many more videos of creator c can still go
in the list (its unplaced eligible videos, at most its remaining cap), r the slots still to fill
(the slots asked for, at most sum(m_c)), and L the creator just placed. A multiset of r videos
with counts x_c can be ordered with no equal neighbours and a first element other than L iff
x_L <= floor(r / 2) and every other x_c <= ceil(r / 2); so r slots can be filled iff

    sum_c min(m_c, b_c) >= r,   b_L = floor(r / 2), b_c = ceil(r / 2) otherwise.

tests/serving/policy/test_creator_spread.py checks this against brute force over small cases.
Truncating a separable list leaves a separable list, so a list that stops early (fewer slots
asked for) never breaks the guarantee.
"""

from __future__ import annotations

import numpy as np

NO_CREATOR = -1


def separable(capacity: np.ndarray, previous: int, slots: int) -> bool:
    """Whether `slots` videos drawn within `capacity` (per creator code) can follow a video of
    creator `previous` (or start the list when `NO_CREATOR`) with no equal neighbours."""
    bounds = np.full(len(capacity), (slots + 1) // 2, dtype=np.int64)
    if previous != NO_CREATOR:
        bounds[previous] = slots // 2
    return int(np.minimum(capacity, bounds).sum()) >= slots


class CreatorSpread:
    """How many videos of each creator are placed and still placeable, for a list of `slots`.

    Creators are dense codes 0..C-1 shared by the candidates and the exploration pool. Placing a
    candidate "consumes" it (one fewer placeable video of its creator); placing an exploration
    video that is not a candidate only uses up its creator's cap. Totals are kept up to date by
    `place`, so the common question (are there more creators left than slots?) costs no array work.
    """

    def __init__(self, available: np.ndarray, max_per_creator: int, slots: int):
        self.available = available.astype(np.int64)  # (creators,) eligible candidates not yet placed
        self.placed = np.zeros(len(available), dtype=np.int64)  # (creators,) videos in the list
        self.max_per_creator = max_per_creator
        self.slots = slots
        self.filled = 0
        self.previous = NO_CREATOR
        # (creators,) how many more candidates of each creator the list can still take
        self.capacity = np.minimum(self.available, max_per_creator)
        self.capacity_total = int(self.capacity.sum())
        self.creators_with_capacity = int(np.count_nonzero(self.capacity))

    def at_cap(self, creator: int) -> bool:
        return self.placed[creator] >= self.max_per_creator

    def is_separable(self) -> bool:
        """Whether the rest of the list can still be filled with no two neighbours from one creator."""
        remaining = min(self.slots - self.filled, self.capacity_total)
        other_creators = self.creators_with_capacity
        if self.previous != NO_CREATOR and self.capacity[self.previous] > 0:
            other_creators -= 1
        if other_creators >= remaining:  # one video from each other creator fills it
            return True
        return separable(self.capacity, self.previous, remaining)

    def separable_after(self, consumes: bool) -> np.ndarray | None:
        """(creators,) whether placing a video of each creator now keeps the rest separable.

        None means every creator does (the common case: more creators left than slots), so the
        caller can skip the mask.
        """
        slots_after = self.slots - self.filled - 1
        if slots_after <= 0 or self.creators_with_capacity - 1 >= slots_after:
            return None
        capacity = self.capacity
        room = self.max_per_creator - self.placed - 1
        capacity_after = np.maximum(np.minimum(self.available - int(consumes), room), 0)
        remaining = np.minimum(slots_after, self.capacity_total - capacity + capacity_after)  # (creators,)
        # `remaining` takes at most two values (total - 1, total, each capped): sum once per value.
        fill = np.empty(len(capacity), dtype=np.int64)
        for value in np.unique(remaining):
            fill[remaining == value] = np.minimum(capacity, (value + 1) // 2).sum()
        fill -= np.minimum(capacity, (remaining + 1) // 2)
        fill += np.minimum(capacity_after, remaining // 2)
        return fill >= remaining

    def place(self, creator: int, consumes: bool) -> None:
        if consumes:
            self.available[creator] -= 1
        self.placed[creator] += 1
        self.filled += 1
        self.previous = creator
        before = int(self.capacity[creator])
        after = max(min(int(self.available[creator]), self.max_per_creator - int(self.placed[creator])), 0)
        self.capacity[creator] = after
        self.capacity_total += after - before
        self.creators_with_capacity -= int(before > 0 and after == 0)
