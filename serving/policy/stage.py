"""The re-ranking stage as the request path holds it: built once from settings, called per request."""

from __future__ import annotations

import numpy as np

from serving.policy.blocklist import Blocklist, load_blocklist
from serving.policy.config import PolicyConfig, policy_config_from_settings
from serving.policy.exploration import ExplorationPool, request_rng
from serving.policy.inputs import RankedCandidates, UserContext
from serving.policy.reranking import PolicyResult, rerank


class PolicyStage:
    """A `PolicyConfig` with its blocklist loaded (once: a bad file fails start-up, not a request)."""

    def __init__(self, config: PolicyConfig, blocklist: Blocklist | None = None):
        self.config = config
        self.blocklist = load_blocklist(config.blocklist_path) if blocklist is None else blocklist

    @classmethod
    def from_settings(cls, settings: object) -> PolicyStage:
        return cls(policy_config_from_settings(settings))

    def rng_for(self, request_id: str) -> np.random.Generator:
        """This request's exploration stream (replayable from the request id when a seed is set)."""
        return request_rng(self.config.exploration_seed, request_id)

    def rerank(
        self,
        candidates: RankedCandidates,
        user: UserContext,
        k: int,
        request_id: str,
        pool: ExplorationPool | None = None,
    ) -> PolicyResult:
        """The served list for one request (see serving.policy.reranking.rerank)."""
        needs_rng = pool is not None and len(pool) > 0 and self.config.exploration_share > 0
        rng = self.rng_for(request_id) if needs_rng else None
        return rerank(candidates, user, self.config, k, pool=pool, blocklist=self.blocklist, rng=rng)
