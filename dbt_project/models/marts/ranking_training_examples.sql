{{ config(location=mart_location('ranking_training_examples')) }}

{#- One row per impression. event_timestamp, the time every feature is joined as of, is the start
    of the impression's request (its first impression), not the impression's own time: serving
    ranks the whole slate at once, before the user acts on any of it, so a feature row stamped
    between the request's start and a later slot's impression (e.g. the user's history after a
    click on slot 0 of this same slate) is not known when the slate is ranked. -#}

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
        min(impression_time) over (partition by request_id, user_id) as event_timestamp,
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
