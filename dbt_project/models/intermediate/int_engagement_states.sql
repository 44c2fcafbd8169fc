{{ config(
    materialized=('table' if target.type == 'spark' else 'incremental'),
    incremental_strategy='append',
    pre_hook="{{ delete_recomputed_rows('event_timestamp', always_recomputed=\"request_id like 'next:%'\") }}",
) }}

{#- The states behind the user_engagement_history mart (its description says what they hold),
    built incrementally: it was the costliest model of a build (7 of 17 s of model time on the
    default data), and after a new day of logs only that day's requests and every user's next
    request get a new state. Each state depends only on the events before it, so a run keeps the
    states stamped before incremental_from() and computes the rest, from the events at or after
    the cut plus the last history_length watches (impression_history_length impressions) of each
    user before it: all any window ending after the cut reads, so the lists come out as a whole
    build's (tests/dbt_project/test_incremental_marts.py). The next-request rows, stamped at the
    end of the log, are recomputed on every run.

    DuckDB only: dbt-spark's incremental models cannot delete the rows of a re-judged day from a
    Parquet table, so the distributed profile builds this as a table, whole. -#}

with


watches as (

    {{ last_rows_before_cut(ref('int_watches_enriched'), 'user_id', ['watch_time', 'video_id'],
                            var('history_length')) }}

),

videos as (

    select * from {{ ref('stg_raw__videos') }}

),

impressions as (

    {{ last_rows_before_cut(ref('stg_raw__impressions'), 'user_id', ['impression_time', 'video_id', 'request_id'],
                            var('impression_history_length')) }}

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
    -- request_id last: two requests at one instant may show one video, and the state after them
    -- must be the window ending at the row the qualify keeps, in a whole build and an incremental one
    window recent_impressions as (
        partition by user_id
        order by impression_time, video_id, request_id
        rows between {{ var('impression_history_length') - 1 }} preceding and current row
    )
    qualify row_number() over (
        partition by user_id, impression_time order by video_id desc, request_id desc
    ) = 1

),

request_starts as (

    select request_id, user_id, min(impression_time) as event_timestamp
    from {{ ref('stg_raw__impressions') }}
    group by request_id, user_id
    {% if incremental_from() %}having min(impression_time) >= cast('{{ incremental_from() }}' as timestamp){% endif %}

),

end_of_log as (

    select max(event_time) + interval 1 millisecond as event_timestamp
    from (
        select watch_time as event_time from {{ ref('int_watches_enriched') }}
        union all
        select impression_time as event_time from {{ ref('stg_raw__impressions') }}
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

)

select * from final
