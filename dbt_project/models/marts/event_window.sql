{{ config(location=mart_location('event_window')) }}

{#- One row: the days the logs cover and the temporal holdout cut-off, for the Python layers
    (the model assets' holdout, their lineage tags), so Python and SQL agree on one split. -#}
with

event_window as (

    select * from {{ ref('int_event_window') }}

),

final as (

    select
        first_event_day,
        last_event_day,
        max_watch_time,
        holdout_start
    from event_window

)

select * from final
