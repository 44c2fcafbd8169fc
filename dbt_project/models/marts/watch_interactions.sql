{{ config(location=mart_location('watch_interactions')) }}

with

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

event_window as (

    select * from {{ ref('int_event_window') }}

),

pairs as (

    select
        user_id,
        video_id,
        min(watch_time) as first_watch_time,
        max(watch_time) as last_watch_time,
        count(*) as watch_count,
        sum(watch_seconds) as watch_seconds_total
    from watches
    group by user_id, video_id

),

final as (

    select
        pairs.user_id,
        pairs.video_id,
        pairs.first_watch_time,
        pairs.last_watch_time,
        cast(pairs.watch_count as bigint) as watch_count,
        cast(pairs.watch_seconds_total as double) as watch_seconds_total,
        case
            when pairs.first_watch_time < event_window.holdout_start then 'train'
            else 'holdout'
        end as split
    from pairs
    cross join event_window

)

select * from final
