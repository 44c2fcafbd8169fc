{#- Every impression with what followed it: a click is the user's first watch of the shown video
    at or after the impression, if it started within 30 minutes of it. -#}
with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

event_window as (

    select * from {{ ref('int_event_window') }}

),

first_watch_after as (

    select
        impressions.request_id,
        impressions.user_id,
        impressions.video_id,
        impressions.surface,
        impressions.position,
        impressions.impression_time,
        impressions.source,
        impressions.source_score,
        impressions.score,
        impressions.propensity,
        impressions.reason,
        impressions.explored,
        impressions.head_predictions,
        impressions.model_versions,
        watches.watch_time as next_watch_time,
        watches.watch_seconds as next_watch_seconds,
        watches.liked as next_liked,
        watches.shared as next_shared,
        watches.disliked as next_disliked
    from {{ asof_join('impressions', 'watches', ['user_id', 'video_id'], 'impression_time', '<=', 'watch_time') }}

),

clicks as (

    select
        *,
        coalesce(
            next_watch_time <= impression_time + interval 30 minute,
            false
        ) as clicked
    from first_watch_after

),

final as (

    select
        clicks.request_id,
        clicks.user_id,
        clicks.video_id,
        clicks.surface,
        clicks.position,
        clicks.impression_time,
        clicks.source,
        clicks.source_score,
        -- what the serving policy logged (null where it did not): off-policy evaluation's inputs
        clicks.score,
        clicks.propensity,
        clicks.reason,
        clicks.explored,
        clicks.head_predictions,
        clicks.model_versions,
        clicks.clicked,
        case when clicks.clicked then clicks.next_watch_time end as click_time,
        case when clicks.clicked then clicks.next_watch_seconds else 0.0 end as watch_seconds,
        clicks.clicked and clicks.next_liked as liked,
        clicks.clicked and clicks.next_shared as shared,
        clicks.clicked and clicks.next_disliked as disliked,
        case
            when clicks.impression_time >= event_window.holdout_start then 'holdout'
            else 'train'
        end as split
    from clicks
    cross join event_window

)

select * from final
