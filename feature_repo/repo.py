"""The definitions as module-level objects, for the Feast CLI (`feast -c feature_repo apply`).

Feast's CLI imports every module of the repo and collects the Feast objects it finds at module
level; code calls `feature_repo.store.feature_definitions(settings)` instead. The marts are
read from `VIDREC_HOME` through vidrec.settings, like everywhere else. `.feastignore` keeps the
CLI from importing the other modules a second time under top-level names.
"""

from __future__ import annotations

from feature_repo.entities import request, user, video
from feature_repo.features import feature_views
from feature_repo.on_demand import candidate_request
from feature_repo.services import feature_services
from vidrec.settings import load_settings

_views = feature_views(load_settings().marts_dir)
_services = feature_services(_views)

user_profile = _views["user_profile"]
user_activity = _views["user_activity"]
video_stats = _views["video_stats"]
user_watch_history = _views["user_watch_history"]
request_engagement = _views["request_engagement"]
candidate_engagement = _views["candidate_engagement"]

ranker_features = _services["ranker_features"]
retrieval_user_features = _services["retrieval_user_features"]

__all__ = [
    "candidate_engagement",
    "candidate_request",
    "ranker_features",
    "request",
    "request_engagement",
    "retrieval_user_features",
    "user",
    "user_activity",
    "user_profile",
    "user_watch_history",
    "video",
    "video_stats",
]
