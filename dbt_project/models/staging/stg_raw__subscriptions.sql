with

source as (

    select * from {{ source('raw', 'subscriptions') }}

),

renamed as (

    select
        cast(user_id as bigint) as user_id,
        cast(creator_id as bigint) as creator_id,
        cast(subscribed_time as timestamp) as subscribed_time
    from source

),

final as (

    -- a subscription counts from the first time it was logged
    select *
    from renamed
    qualify row_number() over (
        partition by user_id, creator_id
        order by subscribed_time
    ) = 1

)

select * from final
