{{ config(location=mart_location('ranking_training_examples')) }}

with

impression_outcomes as (

    select * from {{ ref('int_impression_outcomes') }}

),

final as (

    select
        request_id,
        user_id,
        video_id,
        surface,
        position,
        impression_time as event_timestamp,
        -- what retrieval said about the candidate: request-time inputs of the ranker
        source as retrieval_source,
        source_score as retrieval_source_score,
        clicked,
        watch_seconds,
        liked,
        shared,
        disliked,
        split
    from impression_outcomes

)

select * from final
