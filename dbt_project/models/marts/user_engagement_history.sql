{{ config(location=mart_location('user_engagement_history')) }}

{#- What the ranker's cross features are computed from: the user's recent engagement log as each
    request saw it, keyed by request_id: as of the start of the request (so a request never sees
    its own impressions). Plus, per user, the state their next request will see, keyed
    'next:<user_id>' (feature_repo.entities.next_request_id) and stamped just after (1 ms) the
    last event of the whole log: the rows the online store serves. The states are computed in
    int_engagement_states (incrementally); this publishes them.

    Keyed by request rather than by user because Feast's file offline store joins a user-keyed
    view by pairing every example of a user with every row of that user before filtering by time;
    with one row per request the join pairs each example with exactly one row.

    Per state: `watch_log`, the last `history_length` watches strictly before the state time, and
    `impression_log`, the last `impression_history_length` impressions strictly before it, each a
    JSON object of parallel lists, oldest first:
        watch_log      {"video_ids", "creator_ids", "categories", "unix_seconds", "fractions"}
        impression_log {"video_ids", "unix_seconds"}
    JSON text rather than list columns: Feast's file offline store tokenizes every object column
    of a source by pickling it, which for ~10^5 rows of numpy arrays costs minutes per join, for
    strings a fraction of a second. Times are Unix seconds, so the on-demand transformation
    subtracts them from the request time without timezone handling. The per-(user, video |
    creator | category) counts, recencies and churn are computed from these logs at request time
    (feature_repo/engagement.py), the same way in training and serving. -#}

select request_id, user_id, event_timestamp, watch_log, impression_log
from {{ ref('int_engagement_states') }}
-- a fixed order: dbt's parallel writes must not reorder the mart between runs
order by user_id, event_timestamp, request_id
