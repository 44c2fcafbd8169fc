"""Multi-source candidate generation: ANN plus co-watch, subscriptions, trending, fresh uploads
and exploration, unioned into one deduplicated list tagged by source (`MultiSourceRetriever`).

Each source is fitted offline from DataFrames as of the data's end time and answers requests from
plain dicts and numpy arrays; saved artifacts are JSON + npz, no pickles.
"""

from models.sources.candidate import SOURCE_PRIORITY, Candidate, union_candidates
from models.sources.co_watch import CoWatchConfig, CoWatchSource
from models.sources.exploration import ExplorationConfig, ExplorationSource
from models.sources.fresh import FreshConfig, FreshSource
from models.sources.multi_source import MultiSourceConfig, MultiSourceRetriever
from models.sources.subscriptions import SubscriptionsConfig, SubscriptionsSource
from models.sources.trending import TrendingConfig, TrendingSource

__all__ = [
    "SOURCE_PRIORITY",
    "Candidate",
    "CoWatchConfig",
    "CoWatchSource",
    "ExplorationConfig",
    "ExplorationSource",
    "FreshConfig",
    "FreshSource",
    "MultiSourceConfig",
    "MultiSourceRetriever",
    "SubscriptionsConfig",
    "SubscriptionsSource",
    "TrendingConfig",
    "TrendingSource",
    "union_candidates",
]
