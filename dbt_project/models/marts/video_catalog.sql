{{ config(location=mart_location('video_catalog')) }}

with

videos as (

    select * from {{ ref('stg_raw__videos') }}

),

final as (

    select
        video_id,
        creator_id,
        category,
        duration_seconds,
        upload_time,
        title_tokens
    from videos

)

select * from final
