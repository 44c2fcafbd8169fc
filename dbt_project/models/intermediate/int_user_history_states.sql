{#- The one definition of "a user's history": the state after every distinct event time of a user
    (a watch or a search; simultaneous events collapse into one state). Holds the last
    `history_length` watched videos up to and including that time (oldest first), the distinct
    unigrams and bigrams of the last 10 searches, the lifetime watch count, and the time of the
    last watch in the state (so rollback examples can prove the history precedes the label). -#}
with

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

searches as (

    select * from {{ ref('stg_raw__searches') }}

),

watch_states as (

    select
        user_id,
        watch_time,
        {{ list_agg('video_id') }} over recent_watches as recent_watch_video_ids,
        row_number() over (partition by user_id order by watch_time, video_id) as watch_count_total
    from watches
    window recent_watches as (
        partition by user_id
        order by watch_time, video_id
        rows between {{ var('history_length') - 1 }} preceding and current row
    )
    -- the state after the last of several watches that share a timestamp
    qualify row_number() over (partition by user_id, watch_time order by video_id desc) = 1

),

search_terms as (

    select
        user_id,
        search_time,
        {{ unigrams_and_bigrams('query_tokens') }} as search_terms
    from searches

),

search_states as (

    select
        user_id,
        search_time,
        {{ sorted_distinct_flatten(list_agg('search_terms') ~ ' over last_searches') }}
            as recent_search_tokens
    from search_terms
    window last_searches as (
        partition by user_id
        order by search_time
        rows between 9 preceding and current row
    )

),

event_times as (

    select user_id, watch_time as event_timestamp from watch_states
    union
    select user_id, search_time as event_timestamp from search_states

),

with_watches as (

    select
        event_times.user_id,
        event_times.event_timestamp,
        watch_states.recent_watch_video_ids,
        watch_states.watch_count_total,
        watch_states.watch_time as last_watch_time
    from {{ asof_join('event_times', 'watch_states', ['user_id'], 'event_timestamp', '>=', 'watch_time') }}

),

with_searches as (

    select
        with_watches.*,
        search_states.recent_search_tokens
    from {{ asof_join('with_watches', 'search_states', ['user_id'], 'event_timestamp', '>=', 'search_time') }}

),

final as (

    select
        user_id,
        event_timestamp,
        coalesce(recent_watch_video_ids, {{ empty_list('bigint') }}) as recent_watch_video_ids,
        coalesce(recent_search_tokens, {{ empty_list('varchar') }}) as recent_search_tokens,
        cast(coalesce(watch_count_total, 0) as bigint) as watch_count_total,
        last_watch_time
    from with_searches

)

select * from final
