import pytest

from models.evaluation.tuning import Choice, FloatRange, IntRange, tune


def test_finds_the_optimum_inside_the_range():
    result = tune(lambda p: -(p["x"] - 3.0) ** 2, {"x": FloatRange(0.0, 10.0)}, trials_per_round=30)
    assert abs(result.best_params["x"] - 3.0) < 0.5
    assert result.rounds == 1 and result.widened == []
    assert len(result.trials) == 30


def test_a_winner_on_the_edge_widens_that_edge_and_searches_again():
    # The optimum (x = 50) lies far above the first range's high edge (10).
    result = tune(lambda p: -abs(p["x"] - 50.0), {"x": FloatRange(1.0, 10.0, log=True)}, trials_per_round=15,
                  max_widenings=2)
    assert result.rounds == 2
    assert result.widened == ["x: high 10 → 100 (after round 1)"]
    assert abs(result.best_params["x"] - 50.0) < 10.0
    assert len(result.trials) == 30  # the same per-round budget each round


def test_hard_limits_are_never_crossed():
    seen = []

    def objective(params):
        seen.append(params["decay"])
        return params["decay"]  # best at the top edge, which is a hard limit

    result = tune(objective, {"decay": FloatRange(0.5, 1.0, hard_high=1.0)}, trials_per_round=10)
    assert result.rounds == 1 and max(seen) <= 1.0


def test_integer_and_choice_dimensions_and_minimisation():
    result = tune(lambda p: (p["n"] - 4) ** 2 + (0 if p["kind"] == "b" else 5),
                  {"n": IntRange(1, 20), "kind": Choice(("a", "b"))}, trials_per_round=40, direction="minimize")
    assert result.best_params == {"n": 4, "kind": "b"}


def test_an_empty_space_runs_the_objective_once():
    result = tune(lambda p: 0.25, {}, trials_per_round=12)
    assert result.best_params == {} and result.best_value == 0.25 and len(result.trials) == 1


def test_same_seed_same_trials():
    space = {"x": FloatRange(0.0, 1.0)}
    first = tune(lambda p: p["x"] * (1 - p["x"]), space, trials_per_round=8, seed=3)
    second = tune(lambda p: p["x"] * (1 - p["x"]), space, trials_per_round=8, seed=3)
    assert first.trials["x"].tolist() == second.trials["x"].tolist()


@pytest.mark.parametrize(("space", "message"), [
    ({"x": FloatRange(2.0, 1.0)}, "empty"),
    ({"x": FloatRange(0.0, 1.0, log=True)}, "must be positive"),
    ({"x": Choice(())}, "no options"),
])
def test_bad_spaces_are_named(space, message):
    with pytest.raises(ValueError, match=message):
        tune(lambda p: 0.0, space, trials_per_round=1)
