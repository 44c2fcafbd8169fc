"""The loop's named policies: each arm's service runs with one of these settings overrides.

A policy is a way of serving, not a model: every arm reads the same registry and feature store,
so a difference between arms is the policy's own doing. The overrides are VIDREC_* variables,
the same ones an operator would set on a deployment (docs/operations.md lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

MODEL_ALIAS_VARIABLE = "VIDREC_SERVING_MODEL_ALIAS"  # VidrecSettings.serving_model_alias

POLICIES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    # the whole funnel as deployed: retrieval, ranking, re-ranking with the default exploration
    "full_funnel": MappingProxyType({}),
    # the same funnel that only exploits: the feedback loop's narrowing shows without exploration
    "no_exploration": MappingProxyType({"VIDREC_POLICY_EXPLORATION_SHARE": "0"}),
    # five times the default exploration share (3% → 15%)
    "more_exploration": MappingProxyType({"VIDREC_POLICY_EXPLORATION_SHARE": "0.15"}),
    # no retrieval or ranking: every user gets their demographic segment's popular videos, with the
    # policy stage and its exploration as in full_funnel (the baseline a two-stage model must beat)
    "popularity_only": MappingProxyType({"VIDREC_SERVING_FUNNEL": "popularity"}),
    # the newest models: each retrain's candidates, served whether or not they beat the champion
    # (the registry's `challenger` alias; orchestration/assets/deployment.py moves it)
    "challenger": MappingProxyType({MODEL_ALIAS_VARIABLE: "challenger"}),
    # other head weights in the final score: a like worth 120 watch seconds instead of 30
    "like_heavy": MappingProxyType(
        {"VIDREC_SERVING_SCORE_WEIGHTS": '{"watch_time": 1.0, "like": 120.0, "skip": -30.0}'}),
})


def policy_environment(name: str) -> dict[str, str]:
    """The settings overrides of the policy `name`; a ValueError names the known policies."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known policies: {', '.join(sorted(POLICIES))}")
    return dict(POLICIES[name])


def served_alias(name: str, default: str) -> str:
    """The registry alias the policy `name`'s service follows (`default`: the loop's own setting)."""
    return policy_environment(name).get(MODEL_ALIAS_VARIABLE, default)
