{{ config(location=mart_location('subscription_events')) }}

with

subscriptions as (

    select * from {{ ref('stg_raw__subscriptions') }}

),

final as (

    select
        user_id,
        creator_id,
        subscribed_time
    from subscriptions

)

select * from final
