"""Feature services: what a model asks for by name, in training and in serving alike."""

from __future__ import annotations

from feast import FeatureService, FeatureView, OnDemandFeatureView

from feature_repo.features import RECENT_SEARCH_TOKENS, RECENT_WATCH_VIDEO_IDS

RANKER_FEATURES = "ranker_features"
RETRIEVAL_USER_FEATURES = "retrieval_user_features"


def feature_services(views: dict[str, FeatureView | OnDemandFeatureView]) -> dict[str, FeatureService]:
    """The ranker's and the retrieval tower's feature services over `features.feature_views`."""
    services = (
        FeatureService(
            name=RANKER_FEATURES,
            features=[
                views["user_profile"],
                views["user_activity"],
                views["video_stats"],
                # the recent watches are a bag of ids for the ranker, embedded with the candidate's table
                views["user_watch_history"][["last_watched_video_id", "recent_watch_video_ids"]],
                views["candidate_engagement"],
            ],
            description=(
                "Per (user, video) inputs of the ranking model. candidate_engagement needs the request "
                "data of feature_repo.on_demand.candidate_request with every entity row."
            ),
        ),
        FeatureService(
            name=RETRIEVAL_USER_FEATURES,
            # exactly the tower's inputs: models/retrieval/query.py turns each into a query column
            # and refuses a service holding a feature it does not place
            features=[
                views["user_profile"],
                views["user_watch_history"][[RECENT_WATCH_VIDEO_IDS, RECENT_SEARCH_TOKENS]],
            ],
            description="Per user inputs of the retrieval (candidate generation) tower.",
        ),
    )
    return {service.name: service for service in services}
