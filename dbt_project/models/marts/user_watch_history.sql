{{ config(location=mart_location('user_watch_history')) }}

with

history_states as (

    select * from {{ ref('int_user_history_states') }}

),

final as (

    select
        user_id,
        event_timestamp,
        recent_watch_video_ids,
        recent_search_tokens,
        watch_count_total,
        -- the last watched video on its own: the ranker embeds it with the candidate's table
        {{ list_last('recent_watch_video_ids') }} as last_watched_video_id
    from history_states

)

select * from final
