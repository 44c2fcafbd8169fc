"""Which experiment arm a user is in: decided by a hash of (experiment salt, user id) alone.

A hash rather than a random draw, so every process that asks (the service choosing a user's policy,
the loop driver, the report grouping events by arm, a replay a week later) agrees without sharing
any state, and a user stays in the same arm on every simulated day. The salt names the experiment:
under another salt the same users are re-randomised independently of this one, so one experiment's
arms do not line up with another's.

Each (salt, user) pair is hashed with BLAKE2b to a number uniform on [0, 1), and the unit interval
is cut into consecutive pieces as long as the arms' shares (equal unless given). A user's arm thus
depends on nothing but the salt, the user id, the arm list and the shares: not on which other users
are assigned in the same call.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence

import numpy as np

_HASH_BYTES = 8
_SHARE_TOLERANCE = 1e-9


def assign_arms(
    user_ids: np.ndarray | Sequence[int], arms: Sequence[str], salt: str, shares: Sequence[float] | None = None
) -> np.ndarray:
    """The arm name of each user (an object array aligned with `user_ids`)."""
    boundaries = _share_boundaries(arms, salt, shares)
    draws = np.fromiter((_unit_draw(salt, user_id) for user_id in _as_user_ids(user_ids)), dtype=np.float64)
    arm_index = np.minimum(np.searchsorted(boundaries, draws, side="right"), len(arms) - 1)
    return np.asarray(list(arms), dtype=object)[arm_index]


def assign_arm(user_id: int, arms: Sequence[str], salt: str, shares: Sequence[float] | None = None) -> str:
    """The arm of one user: the same answer `assign_arms` gives for this id in any batch."""
    return str(assign_arms([user_id], arms, salt, shares)[0])


def _unit_draw(salt: str, user_id: int) -> float:
    """A number uniform on [0, 1) that is a function of (salt, user id) only."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=_HASH_BYTES).digest()
    return int.from_bytes(digest, "big") / 2 ** (8 * _HASH_BYTES)


def _as_user_ids(user_ids: np.ndarray | Sequence[int]) -> list[int]:
    """Plain Python ints, so 7, np.int64(7) and np.int32(7) hash to the same text "7"."""
    try:
        return [operator.index(user_id) for user_id in np.asarray(user_ids).ravel().tolist()]
    except TypeError as error:
        raise ValueError(f"user ids must be integers: {error}") from None


def _share_boundaries(arms: Sequence[str], salt: str, shares: Sequence[float] | None) -> np.ndarray:
    """The right ends of the arms' pieces of [0, 1): the cumulative shares, the last exactly 1."""
    if not isinstance(salt, str) or not salt:
        raise ValueError(f"salt must be a non-empty string naming the experiment, got {salt!r}")
    arms = list(arms)
    if len(arms) < 2:
        raise ValueError(f"an experiment needs at least 2 arms, got {len(arms)}: {arms}")
    repeated = sorted({arm for arm in arms if arms.count(arm) > 1})
    if repeated:
        raise ValueError(f"arm names must be unique; {repeated} repeat in {arms}")
    if shares is None:
        shares = [1.0 / len(arms)] * len(arms)
    shares = np.asarray(shares, dtype=np.float64).ravel()
    if len(shares) != len(arms):
        raise ValueError(f"shares has {len(shares)} entries but there are {len(arms)} arms ({arms})")
    if not np.all(np.isfinite(shares)) or np.any(shares < 0):
        raise ValueError(f"shares must be finite and non-negative, got {shares.tolist()}")
    if abs(shares.sum() - 1.0) > _SHARE_TOLERANCE:
        raise ValueError(f"shares must sum to 1, got {shares.tolist()} (sum {shares.sum()!r})")
    boundaries = np.cumsum(shares)
    boundaries[-1] = 1.0
    return boundaries
