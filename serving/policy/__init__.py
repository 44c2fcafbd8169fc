"""The re-ranking / policy stage after ranking: creator caps and spacing, topic diversity (MMR),
hard filters (blocklist, finished videos), a freshness boost for subscriptions, epsilon-greedy
exploration with a logged propensity per slot, and a reason per served video.

The request path builds a `PolicyStage` once and calls `PolicyStage.rerank` per request.
"""

from serving.policy.blocklist import Blocklist, BlocklistError, load_blocklist
from serving.policy.config import PolicyConfig, policy_config_from_settings, policy_settings_fields
from serving.policy.exploration import (
    ExplorationPool,
    pool_from_candidates,
    request_rng,
    slot_distribution,
    slot_propensity,
)
from serving.policy.inputs import UNKNOWN_VIDEO, RankedCandidates, UserContext
from serving.policy.reasons import Reason, reason_text
from serving.policy.reranking import PolicyResult, rerank
from serving.policy.stage import PolicyStage

__all__ = [
    "UNKNOWN_VIDEO",
    "Blocklist",
    "BlocklistError",
    "ExplorationPool",
    "PolicyConfig",
    "PolicyResult",
    "PolicyStage",
    "RankedCandidates",
    "Reason",
    "UserContext",
    "load_blocklist",
    "policy_config_from_settings",
    "policy_settings_fields",
    "pool_from_candidates",
    "reason_text",
    "request_rng",
    "rerank",
    "slot_distribution",
    "slot_propensity",
]
