"""Which model inputs a feature service provides, derived from its Feast definitions.

Training (orchestration) and serving both ask this module, so the ranker's inputs are decided
once, by the feature service's schema, and can never drift between the two code paths.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from feast import FeatureService, FeatureStore
from feast.types import Array, PrimitiveFeastType

from feature_repo.services import RANKER_FEATURES as RANKER_SERVICE

# Features known only at request time (not stored in Feast) that the ranker also reads.
REQUEST_CATEGORICAL_FEATURES = ("surface",)
# The candidate's own id: a join key, not a stored feature, yet a ranker input in its own right
# (embedded, its table shared with the last watched video's: one id space, two roles).
CANDIDATE_KEY_FEATURES = ("video_id",)


@dataclass(frozen=True)
class FeatureColumns:
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    lists: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.categorical + self.numeric + self.lists


def service_feature_columns(store: FeatureStore, service_name: str) -> FeatureColumns:
    """Split a feature service's features into categorical, numeric and list-valued columns.

    Strings and `*_id` integers are categorical (ids are identities, not magnitudes), arrays are
    lists, everything else numeric. Order follows the service definition.
    """
    service = store.get_feature_service(service_name)
    categorical: list[str] = []
    numeric: list[str] = []
    lists: list[str] = []
    for projection in service.feature_view_projections:
        for feature in projection.features:
            dtype = feature.dtype
            if isinstance(dtype, Array):
                lists.append(feature.name)
            elif dtype == PrimitiveFeastType.STRING or feature.name.endswith("_id"):
                categorical.append(feature.name)
            else:
                numeric.append(feature.name)
    return FeatureColumns(tuple(dict.fromkeys(categorical)), tuple(dict.fromkeys(numeric)), tuple(dict.fromkeys(lists)))


def ranker_inputs(store: FeatureStore) -> FeatureColumns:
    """The ranker's model inputs: the ranker service's features, the candidate's id and the
    request's categoricals.

    The pipeline's ranking_model asset and bench/ranking.py both ask this, so the benchmark
    measures the model on exactly the features it ships with.
    """
    columns = service_feature_columns(store, RANKER_SERVICE)
    return FeatureColumns(
        tuple(dict.fromkeys(columns.categorical + CANDIDATE_KEY_FEATURES + REQUEST_CATEGORICAL_FEATURES)),
        columns.numeric,
        columns.lists,
    )


def feature_refs_by_join_keys(
    store: FeatureStore, features: FeatureService | list[str]
) -> dict[tuple[str, ...], list[str]]:
    """Group the stored features' `view:feature` references by the join keys of their view.

    On-demand views have no join keys and are left out: see `feature_repo.on_demand`.
    """
    on_demand = {view.name for view in store.list_on_demand_feature_views()}
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    if isinstance(features, FeatureService):
        for projection in features.feature_view_projections:
            if projection.name in on_demand:
                continue
            keys = tuple(store.get_feature_view(projection.name).join_keys)
            groups[keys] += [f"{projection.name_to_use()}:{feature.name}" for feature in projection.features]
    else:
        for reference in features:
            view_name = reference.split(":", 1)[0]
            if view_name in on_demand:
                continue
            groups[tuple(store.get_feature_view(view_name).join_keys)].append(reference)
    return dict(groups)
