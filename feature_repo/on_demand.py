"""On-demand feature views: features computed per request, from stored features plus request data.

`candidate_engagement` crosses the user's engagement log with the candidate (see
`feature_repo.engagement`) and passes through what retrieval said about the candidate. Request
data, which only the caller knows, comes in through `candidate_request`: in training as columns of
the entity frame, at serving as fields of each entity row.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView, Field, OnDemandFeatureView, RequestSource
from feast.types import Float64, Int64, String

from feature_repo import engagement

CANDIDATE_ENGAGEMENT = "candidate_engagement"

candidate_request = RequestSource(
    name="candidate_request",
    description=(
        "Per request and candidate: the request time (Unix seconds), the retrieval source that "
        "nominated the candidate and its rank score 1 / (1 + rank in that source)."
    ),
    schema=[
        Field(name=engagement.REQUEST_TIME, dtype=Float64),
        Field(name=engagement.RETRIEVAL_SOURCE, dtype=String),
        Field(name=engagement.RETRIEVAL_SOURCE_SCORE, dtype=Float64),
    ],
)

def candidate_engagement_udf(inputs: pd.DataFrame) -> pd.DataFrame:
    # Imported inside: Feast stores this function in its registry and may call it from there.
    from feature_repo.engagement import candidate_engagement_features

    return candidate_engagement_features(inputs)


def candidate_engagement_view(request_engagement: FeatureView, video_stats: FeatureView) -> OnDemandFeatureView:
    schema = [
        *(Field(name=name, dtype=Int64) for name in engagement.COUNT_FEATURES),
        *(Field(name=name, dtype=Float64) for name in engagement.DAYS_SINCE_FEATURES),
        *(Field(name=name, dtype=Float64) for name in engagement.FRACTION_FEATURES),
        Field(name=engagement.CANDIDATE_SOURCE, dtype=String),
        Field(name=engagement.CANDIDATE_SOURCE_SCORE, dtype=Float64),
    ]
    return OnDemandFeatureView(
        name=CANDIDATE_ENGAGEMENT,
        description=(
            "Per candidate: the user's watches, recency and watched fraction of this video, its "
            "creator and its category (within the engagement log), times shown since last watched "
            "(churn), and the retrieval source and source score."
        ),
        sources=[request_engagement, video_stats[list(engagement.CANDIDATE_COLUMNS)], candidate_request],
        schema=schema,
        udf=candidate_engagement_udf,
        udf_string=inspect.getsource(candidate_engagement_udf),
        mode="pandas",
    )


@dataclass(frozen=True)
class OnDemandRequest:
    """One on-demand view asked for by a feature service or a list of references."""

    view: OnDemandFeatureView
    features: tuple[str, ...]  # the requested outputs

    @property
    def input_refs(self) -> list[str]:
        """`view:feature` references of the stored features the transformation reads."""
        return [
            f"{projection.name}:{feature.name}"
            for projection in self.view.source_feature_view_projections.values()
            for feature in projection.features
        ]

    @property
    def input_columns(self) -> list[str]:
        """The stored inputs and request fields the transformation reads (besides join keys)."""
        stored = (reference.split(":", 1)[1] for reference in self.input_refs)
        return list(dict.fromkeys([*stored, *self.request_fields]))

    @property
    def request_fields(self) -> list[str]:
        return [field.name for source in self.view.source_request_sources.values() for field in source.schema]

    def require_request_data(self, columns) -> None:
        """Raise, naming them, when request fields the view needs are not among `columns`."""
        missing = [name for name in self.request_fields if name not in columns]
        if missing:
            raise ValueError(f"examples lack request data {missing} needed by on-demand view {self.view.name!r}")

    def outputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The requested outputs for `frame` (stored inputs, join keys and request fields as
        columns), computed by the view's own transformation; indexed like `frame`."""
        self.require_request_data(frame.columns)
        return self.view.feature_transformation.transform(frame)[list(self.features)].set_axis(frame.index)

    def outputs_for_one_user(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The requested outputs for one request's candidates, column by column. `columns` holds
        what `outputs` reads, as numpy arrays, every row carrying the same user's stored inputs.

        A view with a columnar form (`COLUMNAR_FORMS`: the same computation as its pandas
        transformation, without the DataFrames around it) runs that; any other view runs its
        own transformation on a frame of the columns."""
        columnar = COLUMNAR_FORMS.get(self.view.name)
        if columnar is None:
            outputs = self.outputs(pd.DataFrame(columns, copy=False))
            return {name: outputs[name].to_numpy() for name in self.features}
        self.require_request_data(columns)
        outputs = columnar(columns)
        return {name: outputs[name] for name in self.features}

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` plus the requested outputs."""
        return pd.concat([frame, self.outputs(frame)], axis=1)


def candidate_engagement_columns(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`candidate_engagement` for candidates sharing one user's logs (read off the first row)."""
    outputs = engagement.one_user_engagement(
        columns[engagement.WATCH_LOG][0], columns[engagement.IMPRESSION_LOG][0], columns["video_id"],
        columns["creator_id"], columns["category"], np.asarray(columns[engagement.REQUEST_TIME], dtype=float),
    )
    sources = np.asarray(columns[engagement.RETRIEVAL_SOURCE], dtype=object)
    outputs[engagement.CANDIDATE_SOURCE] = np.where(pd.isna(sources), None, sources)
    outputs[engagement.CANDIDATE_SOURCE_SCORE] = np.asarray(columns[engagement.RETRIEVAL_SOURCE_SCORE], dtype=float)
    return outputs


# On-demand views whose transformation also exists column-wise for one user's candidates.
COLUMNAR_FORMS: dict[str, Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]] = {
    CANDIDATE_ENGAGEMENT: candidate_engagement_columns,
}


def on_demand_requests(store: FeatureStore, features: FeatureService | list[str]) -> list[OnDemandRequest]:
    """The on-demand views among `features`, with the outputs asked of each."""
    on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
    requested: dict[str, list[str]] = {}
    if isinstance(features, FeatureService):
        for projection in features.feature_view_projections:
            if projection.name in on_demand:
                requested.setdefault(projection.name, []).extend(feature.name for feature in projection.features)
    else:
        for reference in features:
            view_name, feature_name = reference.split(":", 1)
            if view_name in on_demand:
                requested.setdefault(view_name, []).append(feature_name)
    return [OnDemandRequest(on_demand[name], tuple(dict.fromkeys(names))) for name, names in requested.items()]


def unix_seconds(timestamps: pd.Series | pd.Timestamp) -> pd.Series | float:
    """Request times as `request_unix_seconds` wants them (naive timestamps are UTC)."""
    if isinstance(timestamps, pd.Timestamp):
        stamp = timestamps if timestamps.tzinfo is not None else timestamps.tz_localize("UTC")
        return stamp.timestamp()
    utc = pd.to_datetime(timestamps, utc=True)
    return (utc - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
