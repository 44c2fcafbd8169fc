with

source as (

    select * from {{ source('raw', 'searches') }}

),

renamed as (

    select
        cast(user_id as bigint) as user_id,
        cast(search_time as timestamp) as search_time,
        cast(query_tokens as {{ list_type('varchar') }}) as query_tokens
    from source

),

final as (

    select *
    from renamed
    qualify row_number() over (
        partition by user_id, search_time
        order by query_tokens
    ) = 1

)

select * from final
