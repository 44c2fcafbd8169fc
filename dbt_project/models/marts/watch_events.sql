{{ config(location=mart_location('watch_events')) }}

with

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

final as (

    select
        user_id,
        video_id,
        watch_time
    from watches

)

select * from final
