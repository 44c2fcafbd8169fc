{{ config(location=mart_location('user_features_daily')) }}

{#- One end-of-day snapshot per user and day: event_timestamp is the midnight that ends the day
    and every counter uses only events strictly before it. Snapshots run from the midnight that
    starts the user's first day in the logs (all counters zero) to the midnight after the last
    logged day, so a point-in-time join finds a row for any event in the window. -#}

with

users as (

    select * from {{ ref('stg_raw__users') }}

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

user_days as (

    select
        users.user_id,
        {{ days_from_to(
            'greatest(cast(users.signup_time as date), event_window.first_event_day) - 1',
            'event_window.last_event_day'
        ) }} as activity_day
    from users
    cross join event_window

),

{{ daily_activity_ctes('user_days', 'user_id') }},

rolling as (

    -- the spine has every day, so a frame of n rows is a window of n days
    select
        user_id,
        activity_day,
        sum(watch_count) over last_28_days as watch_count_28d,
        sum(watch_seconds) over last_28_days as watch_seconds_28d,
        sum(watch_fraction_sum) over last_28_days as watch_fraction_sum_28d,
        sum(like_count) over last_28_days as like_count_28d,
        count_if(watch_count > 0) over last_28_days as active_days_28d,
        sum(impression_count) over last_7_days as impressions_7d,
        sum(click_count) over last_7_days as clicks_7d
    from daily
    window
        last_28_days as (
            partition by user_id order by activity_day rows between 27 preceding and current row
        ),
        last_7_days as (
            partition by user_id order by activity_day rows between 6 preceding and current row
        )

),

final as (

    select
        rolling.user_id,
        cast(rolling.activity_day + interval 1 day as timestamp) as event_timestamp,
        users.country,
        users.device,
        users.age_bucket,
        users.gender,
        cast(rolling.watch_count_28d as bigint) as watch_count_28d,
        cast(rolling.watch_seconds_28d as double) as watch_seconds_28d,
        cast(
            case
                when rolling.watch_count_28d > 0
                    then rolling.watch_fraction_sum_28d / rolling.watch_count_28d
                else 0.0
            end as double
        ) as mean_watch_fraction_28d,
        cast(rolling.like_count_28d as bigint) as like_count_28d,
        cast(rolling.active_days_28d as bigint) as active_days_28d,
        cast(rolling.impressions_7d as bigint) as impressions_7d,
        cast(rolling.clicks_7d as bigint) as clicks_7d
    from rolling
    inner join users
        on rolling.user_id = users.user_id

)

select * from final
