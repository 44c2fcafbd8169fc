{#- One row: the days the logs cover and the temporal holdout cut-off (docs/architecture.md):
    holdout_start = date_trunc('day', max(watch_time)) - (holdout_days - 1) days. -#}
with

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

searches as (

    select * from {{ ref('stg_raw__searches') }}

),

event_times as (

    select watch_time as event_time from watches
    union all
    select impression_time as event_time from impressions
    union all
    select search_time as event_time from searches

),

watch_bounds as (

    select
        max(watch_time) as max_watch_time
    from watches

),

event_bounds as (

    select
        cast(min(event_time) as date) as first_event_day
    from event_times

),

final as (

    select
        event_bounds.first_event_day,
        cast(watch_bounds.max_watch_time as date) as last_event_day,
        watch_bounds.max_watch_time,
        cast(date_trunc('day', watch_bounds.max_watch_time) as timestamp)
            - interval {{ var('holdout_days') - 1 }} day as holdout_start
    from watch_bounds
    cross join event_bounds

)

select * from final
