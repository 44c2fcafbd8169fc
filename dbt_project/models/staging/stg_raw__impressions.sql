with

source as (

    select * from {{ source('raw', 'impressions') }}

),

renamed as (

    select
        cast(request_id as varchar) as request_id,
        cast(user_id as bigint) as user_id,
        cast(video_id as bigint) as video_id,
        cast(surface as varchar) as surface,
        cast(position as integer) as position,
        cast(impression_time as timestamp) as impression_time,
        cast(source as varchar) as source,
        cast(source_score as double) as source_score
    from source

),

final as (

    -- a request shows a video once: keep the first logged copy
    select *
    from renamed
    qualify row_number() over (
        partition by request_id, video_id
        order by impression_time, position, user_id, surface
    ) = 1

)

select * from final
