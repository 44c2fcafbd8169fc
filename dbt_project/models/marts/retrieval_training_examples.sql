{{ config(location=mart_location('retrieval_training_examples')) }}

with

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

history_states as (

    select * from {{ ref('int_user_history_states') }}

),

event_window as (

    select * from {{ ref('int_event_window') }}

),

labels as (

    select
        user_id,
        video_id as label_video_id,
        watch_time as label_time
    from watches

),

rolled_back as (

    -- the history state just before the label: nothing at or after label_time is in it
    select
        labels.user_id,
        labels.label_video_id,
        labels.label_time,
        history_states.recent_watch_video_ids as history_video_ids,
        history_states.recent_search_tokens as history_search_tokens,
        history_states.last_watch_time as history_last_watch_time
    from {{ asof_join('labels', 'history_states', ['user_id'], 'label_time', '>', 'event_timestamp', kind='inner') }}
    where {{ list_length('history_states.recent_watch_video_ids') }} >= 1

),

split as (

    select
        rolled_back.*,
        case
            when rolled_back.label_time >= event_window.holdout_start then 'holdout'
            else 'train'
        end as split,
        case
            when rolled_back.label_time >= event_window.holdout_start
                then event_window.max_watch_time
            else event_window.holdout_start
        end as window_end
    from rolled_back
    cross join event_window

),

capped as (

    -- equal weight per user: the most recent examples of each user in each split
    select *
    from split
    qualify row_number() over (
        partition by user_id, split
        order by label_time desc, label_video_id desc
    ) <= {{ var('max_examples_per_user') }}

),

final as (

    select
        user_id,
        label_video_id,
        label_time,
        history_video_ids,
        history_search_tokens,
        history_last_watch_time,
        {{ microseconds_between('label_time', 'window_end') }} / 86400e6 as example_age_days,
        split
    from capped

)

select * from final
