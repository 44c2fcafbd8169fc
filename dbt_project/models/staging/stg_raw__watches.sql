with

source as (

    select * from {{ source('raw', 'watches') }}

),

renamed as (

    select
        cast(user_id as bigint) as user_id,
        cast(video_id as bigint) as video_id,
        cast(watch_time as timestamp) as watch_time,
        cast(watch_seconds as double) as watch_seconds,
        coalesce(cast(liked as boolean), false) as liked,
        coalesce(cast(shared as boolean), false) as shared,
        coalesce(cast(disliked as boolean), false) as disliked
    from source

),

final as (

    select *
    from renamed
    qualify row_number() over (
        partition by user_id, video_id, watch_time
        order by watch_seconds desc, liked desc, shared desc, disliked desc
    ) = 1

)

select * from final
