"""The counting rule that says whether a list can still be filled with no two neighbours from one
creator agrees with trying every order, so the policy can rely on it instead of searching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from serving.policy.creator_spread import NO_CREATOR, CreatorSpread, separable


def separable_by_search(capacity: tuple[int, ...], previous: int, slots: int) -> bool:
    """Try every sequence of `slots` creators within `capacity` that avoids equal neighbours."""
    creators = range(len(capacity))
    for sequence in itertools.product(creators, repeat=slots):
        if any(sequence.count(creator) > capacity[creator] for creator in creators):
            continue
        chain = ((previous,) if previous != NO_CREATOR else ()) + sequence
        if all(left != right for left, right in itertools.pairwise(chain)):
            return True
    return slots == 0


@pytest.mark.parametrize("slots", range(6))
def test_the_counting_rule_matches_brute_force_for_every_small_case(slots):
    for capacity in itertools.product(range(4), repeat=3):
        for previous in (NO_CREATOR, 0, 1, 2):
            expected = separable_by_search(capacity, previous, slots)
            assert separable(np.array(capacity), previous, slots) == expected, (capacity, previous, slots)


def test_separable_after_says_which_creator_can_go_next_without_painting_into_a_corner():
    # Three videos of creator 0, two of creator 1, five slots: only 0 1 0 1 0 works, so the first
    # video must be creator 0's although creator 1 would be allowed by the cap.
    spread = CreatorSpread(np.array([3, 2]), max_per_creator=5, slots=5)

    keeps = spread.separable_after(consumes=True)

    assert keeps.tolist() == [True, False]


def test_separable_after_agrees_with_brute_force_after_every_first_move():
    for available in itertools.product(range(4), repeat=3):
        for cap in (1, 2, 3):
            for slots in range(1, 6):
                spread = CreatorSpread(np.array(available), max_per_creator=cap, slots=slots)
                if not spread.is_separable() or spread.creators_with_capacity == 0:
                    continue
                keeps = spread.separable_after(consumes=True)
                for creator in range(3):
                    if spread.capacity[creator] == 0:
                        continue
                    one = np.eye(3, dtype=int)[creator]
                    after = np.minimum(np.array(available) - one, cap - one)
                    remaining = min(slots - 1, int(after.sum()))
                    expected = separable_by_search(tuple(after), creator, remaining)
                    assert (keeps is None or bool(keeps[creator])) == expected, (available, cap, slots, creator)


def test_placing_a_video_updates_capacity_and_the_cap():
    spread = CreatorSpread(np.array([3, 1]), max_per_creator=2, slots=4)

    spread.place(0, consumes=True)
    spread.place(0, consumes=True)

    assert spread.at_cap(0)
    assert spread.capacity.tolist() == [0, 1]
    assert (spread.capacity_total, spread.creators_with_capacity) == (1, 1)


def test_an_exploration_video_uses_its_creators_cap_but_no_candidate():
    spread = CreatorSpread(np.array([2, 0]), max_per_creator=2, slots=4)

    spread.place(0, consumes=False)

    assert spread.available.tolist() == [2, 0]
    assert spread.capacity.tolist() == [1, 0]
