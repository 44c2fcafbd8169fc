{{ config(location=mart_location('user_engagement_history')) }}

{#- What the ranker's cross features are computed from: the user's recent engagement log as each
    request saw it, keyed by request_id: as of the start of the request (so a request never sees
    its own impressions). Plus, per user, the state their next request will see, keyed
    'next:<user_id>' (feature_repo.entities.next_request_id) and stamped just after (1 ms) the
    last event of the whole log: the rows the online store serves.

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

with

watches as (

    select * from {{ ref('int_watches_enriched') }}

),

videos as (

    select * from {{ ref('stg_raw__videos') }}

),

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

watch_log_states as (

    select
        watches.user_id,
        watches.watch_time,
        {{ list_agg('watches.video_id') }} over recent_watches as watch_log_video_ids,
        {{ list_agg('watches.creator_id') }} over recent_watches as watch_log_creator_ids,
        {{ list_agg("coalesce(videos.category, 'unknown')") }} over recent_watches as watch_log_categories,
        {{ list_agg(unix_seconds('watches.watch_time')) }} over recent_watches as watch_log_unix_seconds,
        {{ list_agg('watches.watch_fraction') }} over recent_watches as watch_log_fractions
    from watches
    left join videos
        on watches.video_id = videos.video_id
    window recent_watches as (
        partition by watches.user_id
        order by watches.watch_time, watches.video_id
        rows between {{ var('history_length') - 1 }} preceding and current row
    )
    -- the state after the last of several watches that share a timestamp
    qualify row_number() over (
        partition by watches.user_id, watches.watch_time order by watches.video_id desc
    ) = 1

),

impression_log_states as (

    select
        user_id,
        impression_time,
        {{ list_agg('video_id') }} over recent_impressions as impression_log_video_ids,
        {{ list_agg(unix_seconds('impression_time')) }} over recent_impressions as impression_log_unix_seconds
    from impressions
    window recent_impressions as (
        partition by user_id
        order by impression_time, video_id
        rows between {{ var('impression_history_length') - 1 }} preceding and current row
    )
    qualify row_number() over (
        partition by user_id, impression_time order by video_id desc
    ) = 1

),

request_starts as (

    select request_id, user_id, min(impression_time) as event_timestamp
    from impressions
    group by request_id, user_id

),

end_of_log as (

    select max(event_time) + interval 1 millisecond as event_timestamp
    from (
        select watch_time as event_time from watches
        union all
        select impression_time as event_time from impressions
    ) as event_times

),

next_requests as (

    select 'next:' || cast(users.user_id as string) as request_id, users.user_id, end_of_log.event_timestamp
    from (select distinct user_id from watches union select distinct user_id from impressions) as users
    cross join end_of_log

),

state_times as (

    select request_id, user_id, event_timestamp from request_starts
    union all
    select request_id, user_id, event_timestamp from next_requests

),

with_watches as (

    select
        state_times.request_id,
        state_times.user_id,
        state_times.event_timestamp,
        watch_log_states.watch_log_video_ids,
        watch_log_states.watch_log_creator_ids,
        watch_log_states.watch_log_categories,
        watch_log_states.watch_log_unix_seconds,
        watch_log_states.watch_log_fractions
    -- strictly before: a watch stamped at the request's start is the answer to that request
    -- (logs that stamp a click with its impression's time), not history it was ranked with
    from {{ asof_join('state_times', 'watch_log_states', ['user_id'], 'event_timestamp', '>', 'watch_time') }}

),

with_impressions as (

    select
        with_watches.*,
        impression_log_states.impression_log_video_ids,
        impression_log_states.impression_log_unix_seconds
    -- strictly before: a request's own impressions are not yet history when it is ranked
    from {{ asof_join('with_watches', 'impression_log_states', ['user_id'], 'event_timestamp', '>', 'impression_time') }}

),

final as (

    select
        request_id,
        user_id,
        event_timestamp,
        {{ json_object([
            ('video_ids', 'coalesce(watch_log_video_ids, ' ~ empty_list('bigint') ~ ')'),
            ('creator_ids', 'coalesce(watch_log_creator_ids, ' ~ empty_list('bigint') ~ ')'),
            ('categories', 'coalesce(watch_log_categories, ' ~ empty_list('varchar') ~ ')'),
            ('unix_seconds', 'coalesce(watch_log_unix_seconds, ' ~ empty_list('double') ~ ')'),
            ('fractions', 'coalesce(watch_log_fractions, ' ~ empty_list('double') ~ ')'),
        ]) }} as watch_log,
        {{ json_object([
            ('video_ids', 'coalesce(impression_log_video_ids, ' ~ empty_list('bigint') ~ ')'),
            ('unix_seconds', 'coalesce(impression_log_unix_seconds, ' ~ empty_list('double') ~ ')'),
        ]) }} as impression_log
    from with_impressions
    -- a fixed order: dbt's parallel writes must not reorder the mart between runs
    order by user_id, event_timestamp, request_id

)

select * from final
