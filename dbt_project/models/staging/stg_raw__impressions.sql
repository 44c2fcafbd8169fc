with

source as (

    select * from {{ source('raw', 'impressions') }}

),

{#- The columns only the serving system logs (vidrec/schema.py's optional columns), typed, with
    no rows: a raw log whose every file predates them (simulated or imported before they
    existed) reads without them, and `union all by name` gives them to it as nulls. -#}
serving_columns as (

    select
        cast(null as double) as score,
        cast(null as double) as propensity,
        cast(null as string) as reason,
        cast(null as boolean) as explored,
        cast(null as {{ map_type('varchar', 'double') }}) as head_predictions,
        cast(null as {{ map_type('varchar', 'varchar') }}) as model_versions
    where false

),

every_column as (

    {{ with_optional_columns('source', 'serving_columns') }}

),

renamed as (

    select
        cast(request_id as string) as request_id,
        cast(user_id as bigint) as user_id,
        cast(video_id as bigint) as video_id,
        cast(surface as string) as surface,
        cast(position as integer) as position,
        cast(impression_time as timestamp) as impression_time,
        cast(source as string) as source,
        cast(source_score as double) as source_score,
        cast(score as double) as score,
        cast(propensity as double) as propensity,
        cast(reason as string) as reason,
        cast(explored as boolean) as explored,
        cast(head_predictions as {{ map_type('varchar', 'double') }}) as head_predictions,
        cast(model_versions as {{ map_type('varchar', 'varchar') }}) as model_versions
    from every_column

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
