import numpy as np
import pytest

from orchestration.closed_loop.arms import assign_arm, assign_arms

USERS = np.arange(20_000, dtype=np.int64)


def _within_binomial_tolerance(count: int, total: int, share: float, sigmas: float = 4.0) -> bool:
    return abs(count - total * share) <= sigmas * np.sqrt(total * share * (1 - share))


def test_the_same_salt_gives_the_same_assignment_on_every_call():
    first = assign_arms(USERS, ["control", "treatment"], salt="exp-1")
    again = assign_arms(USERS.tolist(), ["control", "treatment"], salt="exp-1")
    assert first.dtype == object
    assert first.tolist() == again.tolist()


def test_assignment_is_a_fixed_function_of_salt_and_user_so_any_process_agrees():
    # Pinned values: a change to the hash or the cut would silently move users between arms of a running test.
    assert assign_arms(range(1, 11), ["a", "b"], salt="exp-1").tolist() == list("bbbbabaabb")
    assert assign_arms(range(1, 11), ["a", "b", "c"], salt="exp-1", shares=[0.2, 0.3, 0.5]).tolist() == list(
        "ccccacaacc"
    )


def test_two_equal_arms_split_users_about_in_half():
    assigned = assign_arms(USERS, ["control", "treatment"], salt="exp-1")
    assert set(assigned) == {"control", "treatment"}
    assert _within_binomial_tolerance(int((assigned == "control").sum()), len(USERS), 0.5)


def test_shares_set_the_split():
    assigned = assign_arms(USERS, ["control", "treatment"], salt="exp-1", shares=[0.2, 0.8])
    control = int((assigned == "control").sum())
    assert _within_binomial_tolerance(control, len(USERS), 0.2)
    assert not _within_binomial_tolerance(control, len(USERS), 0.5)


def test_three_arms_get_a_third_each():
    assigned = assign_arms(USERS, ["a", "b", "c"], salt="exp-3")
    for arm in ["a", "b", "c"]:
        assert _within_binomial_tolerance(int((assigned == arm).sum()), len(USERS), 1 / 3)


def test_a_zero_share_arm_gets_nobody():
    assigned = assign_arms(USERS, ["a", "held_back", "b"], salt="exp-1", shares=[0.5, 0.0, 0.5])
    assert "held_back" not in set(assigned)


def test_another_salt_re_randomises_independently():
    first = assign_arms(USERS, ["a", "b"], salt="experiment-1") == "a"
    second = assign_arms(USERS, ["a", "b"], salt="experiment-2") == "a"
    assert 0.4 < np.mean(first == second) < 0.6  # not the same split, nor its mirror image
    # The cross-tab is the product of the margins: each cell within binomial noise of it.
    for in_first in (True, False):
        for in_second in (True, False):
            expected_share = np.mean(first == in_first) * np.mean(second == in_second)
            cell = int(np.sum((first == in_first) & (second == in_second)))
            assert _within_binomial_tolerance(cell, len(USERS), expected_share)


def test_a_users_arm_does_not_depend_on_who_else_is_assigned():
    everyone = assign_arms(USERS, ["a", "b", "c"], salt="exp-1")
    some = USERS[[17, 5, 19_999, 3]]
    assert assign_arms(some, ["a", "b", "c"], salt="exp-1").tolist() == everyone[[17, 5, 19_999, 3]].tolist()
    assert assign_arm(int(USERS[17]), ["a", "b", "c"], salt="exp-1") == everyone[17]
    assert assign_arm(np.int32(5), ["a", "b", "c"], salt="exp-1") == everyone[5]


@pytest.mark.parametrize(
    ("arms", "salt", "shares", "message"),
    [
        (["only"], "exp", None, "at least 2 arms"),
        ([], "exp", None, "at least 2 arms"),
        (["a", "b", "a"], "exp", None, r"unique; \['a'\] repeat"),
        (["a", "b"], "exp", [1.0], "shares has 1 entries but there are 2 arms"),
        (["a", "b"], "exp", [1.2, -0.2], "non-negative"),
        (["a", "b"], "exp", [0.5, 0.6], "sum to 1"),
        (["a", "b"], "", None, "salt must be a non-empty string"),
    ],
)
def test_bad_experiment_definitions_raise(arms, salt, shares, message):
    with pytest.raises(ValueError, match=message):
        assign_arms([1, 2, 3], arms, salt=salt, shares=shares)


def test_non_integer_user_ids_raise():
    with pytest.raises(ValueError, match="user ids must be integers"):
        assign_arms([1.5, 2.0], ["a", "b"], salt="exp")
