"""The closed loop's named policies are settings a service accepts, and an unknown name says which exist."""

import pytest

from orchestration.closed_loop.policies import POLICIES, policy_environment
from vidrec.settings import VidrecSettings


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_is_a_valid_service_configuration(name, monkeypatch, tmp_path):
    for key, value in policy_environment(name).items():
        monkeypatch.setenv(key, value)
    VidrecSettings(home=tmp_path)  # a bad override is a ValidationError here, not a service that will not start


def test_the_policies_differ_where_they_say(monkeypatch, tmp_path):
    def settings_of(name: str) -> VidrecSettings:
        with monkeypatch.context() as patch:
            for key, value in policy_environment(name).items():
                patch.setenv(key, value)
            return VidrecSettings(home=tmp_path)

    assert settings_of("no_exploration").policy_exploration_share == 0
    assert settings_of("more_exploration").policy_exploration_share == pytest.approx(0.15)
    assert settings_of("full_funnel") == VidrecSettings(home=tmp_path)
    assert settings_of("like_heavy").serving_score_weights == {"watch_time": 1.0, "like": 120.0, "skip": -30.0}
    assert settings_of("popularity_only").serving_funnel == "popularity"
    assert settings_of("challenger").serving_model_alias == "challenger"


def test_an_unknown_policy_names_the_known_ones():
    with pytest.raises(ValueError, match="known policies: challenger, full_funnel, like_heavy, more_exploration, "
                                         "no_exploration, popularity_only"):
        policy_environment("popularity_first")
