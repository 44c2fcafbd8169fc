with

source as (

    select * from {{ source('raw', 'videos') }}

),

renamed as (

    select
        cast(video_id as bigint) as video_id,
        cast(creator_id as bigint) as creator_id,
        cast(category as string) as category,
        cast(duration_seconds as double) as duration_seconds,
        cast(upload_time as timestamp) as upload_time,
        cast(title_tokens as {{ list_type('varchar') }}) as title_tokens
    from source

),

final as (

    select *
    from renamed
    qualify row_number() over (
        partition by video_id
        order by upload_time, creator_id, category
    ) = 1

)

select * from final
