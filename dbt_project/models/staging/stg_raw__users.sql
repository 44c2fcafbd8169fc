with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select
        cast(user_id as bigint) as user_id,
        cast(signup_time as timestamp) as signup_time,
        cast(country as string) as country,
        cast(device as string) as device,
        cast(age_bucket as string) as age_bucket,
        cast(gender as string) as gender
    from source

),

final as (

    -- demographics change slowly: a re-exported user keeps its latest row
    select *
    from renamed
    qualify row_number() over (
        partition by user_id
        order by signup_time desc, country, device, age_bucket, gender
    ) = 1

)

select * from final
