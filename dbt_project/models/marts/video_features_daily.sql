{{ config(location=mart_location('video_features_daily')) }}

{#- One end-of-day snapshot per video and day: event_timestamp is the midnight that ends the day
    and every counter uses only events strictly before it. Snapshots run from the midnight that
    starts the video's upload day (or the first logged day, if it was uploaded earlier) to the
    midnight after the last logged day. ctr_7d is smoothed towards a 5% prior worth 20
    impressions: (clicks_7d + 1) / (impressions_7d + 20). -#}

with

videos as (

    select * from {{ ref('stg_raw__videos') }}

),

watches as (

    select * from {{ ref('int_watches_enriched') }}

),

impression_outcomes as (

    select * from {{ ref('int_impression_outcomes') }}

),

event_window as (

    select * from {{ ref('int_event_window') }}

),

video_days as (

    select
        videos.video_id,
        {{ days_from_to(
            'greatest(cast(videos.upload_time as date), event_window.first_event_day) - 1',
            'event_window.last_event_day'
        ) }} as activity_day
    from videos
    cross join event_window

),

{{ daily_activity_ctes('video_days', 'video_id') }},

rolling as (

    -- the spine has every day, so a frame of n rows is a window of n days
    select
        video_id,
        activity_day,
        sum(impression_count) over last_7_days as impressions_7d,
        sum(click_count) over last_7_days as clicks_7d,
        sum(watch_count) over last_7_days as watches_7d,
        sum(watch_seconds) over last_7_days as watch_seconds_7d,
        sum(watch_fraction_sum) over last_7_days as watch_fraction_sum_7d,
        sum(like_count) over last_7_days as likes_7d,
        sum(watch_count) over all_days as watch_count_total
    from daily
    window
        last_7_days as (
            partition by video_id order by activity_day rows between 6 preceding and current row
        ),
        all_days as (
            partition by video_id order by activity_day rows between unbounded preceding and current row
        )

),

final as (

    select
        rolling.video_id,
        cast(rolling.activity_day + interval 1 day as timestamp) as event_timestamp,
        videos.creator_id,
        videos.category,
        videos.duration_seconds,
        greatest(
            {{ microseconds_between(
                'videos.upload_time',
                'cast(rolling.activity_day + interval 1 day as timestamp)'
            ) }} / 86400e6,
            0.0
        ) as video_age_days,
        cast(rolling.impressions_7d as bigint) as impressions_7d,
        cast(rolling.clicks_7d as bigint) as clicks_7d,
        cast((rolling.clicks_7d + 1.0) / (rolling.impressions_7d + 20.0) as double) as ctr_7d,
        cast(rolling.watches_7d as bigint) as watches_7d,
        cast(rolling.watch_seconds_7d as double) as watch_seconds_7d,
        cast(
            case
                when rolling.watches_7d > 0 then rolling.watch_fraction_sum_7d / rolling.watches_7d
                else 0.0
            end as double
        ) as mean_watch_fraction_7d,
        cast(
            case
                when rolling.watches_7d > 0 then rolling.likes_7d / rolling.watches_7d
                else 0.0
            end as double
        ) as like_rate_7d,
        cast(rolling.watch_count_total as bigint) as watch_count_total
    from rolling
    inner join videos
        on rolling.video_id = videos.video_id

)

select * from final
