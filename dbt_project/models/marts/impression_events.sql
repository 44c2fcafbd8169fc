{{ config(location=mart_location('impression_events')) }}

with

impressions as (

    select * from {{ ref('stg_raw__impressions') }}

),

final as (

    select
        request_id,
        user_id,
        video_id,
        impression_time
    from impressions

)

select * from final
