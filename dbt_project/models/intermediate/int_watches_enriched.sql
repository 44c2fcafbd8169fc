{#- Every watch with the watched video's facts and the fraction of it that was watched. -#}
with

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

videos as (

    select * from {{ ref('stg_raw__videos') }}

),

final as (

    select
        watches.user_id,
        watches.video_id,
        watches.watch_time,
        watches.watch_seconds,
        watches.liked,
        watches.shared,
        watches.disliked,
        videos.creator_id,
        videos.duration_seconds,
        coalesce(
            least(greatest(watches.watch_seconds / nullif(videos.duration_seconds, 0), 0.0), 1.0),
            0.0
        ) as watch_fraction
    from watches
    left join videos
        on watches.video_id = videos.video_id

)

select * from final
