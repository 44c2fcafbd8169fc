{% macro daily_activity_ctes(spine, entity) -%}
{#- The per-day activity CTEs shared by user_features_daily and video_features_daily: one row
    per `entity` and day of `spine` (a CTE with `entity` and activity_day) with the day's watch,
    like, impression and click counts. Needs CTEs `watches` (int_watches_enriched) and
    `impression_outcomes` (int_impression_outcomes) in scope. A click counts on the day of the
    watch it led to, not the day it was shown. -#}
daily_watches as (

    select
        {{ entity }},
        cast(watch_time as date) as activity_day,
        count(*) as watch_count,
        sum(watch_seconds) as watch_seconds,
        sum(watch_fraction) as watch_fraction_sum,
        count_if(liked) as like_count
    from watches
    group by all

),

daily_impressions as (

    select
        {{ entity }},
        cast(impression_time as date) as activity_day,
        count(*) as impression_count
    from impression_outcomes
    group by all

),

daily_clicks as (

    select
        {{ entity }},
        cast(click_time as date) as activity_day,
        count(*) as click_count
    from impression_outcomes
    where clicked
    group by all

),

daily as (

    select
        {{ spine }}.{{ entity }},
        {{ spine }}.activity_day,
        coalesce(daily_watches.watch_count, 0) as watch_count,
        coalesce(daily_watches.watch_seconds, 0.0) as watch_seconds,
        coalesce(daily_watches.watch_fraction_sum, 0.0) as watch_fraction_sum,
        coalesce(daily_watches.like_count, 0) as like_count,
        coalesce(daily_impressions.impression_count, 0) as impression_count,
        coalesce(daily_clicks.click_count, 0) as click_count
    from {{ spine }}
    left join daily_watches
        on {{ spine }}.{{ entity }} = daily_watches.{{ entity }}
        and {{ spine }}.activity_day = daily_watches.activity_day
    left join daily_impressions
        on {{ spine }}.{{ entity }} = daily_impressions.{{ entity }}
        and {{ spine }}.activity_day = daily_impressions.activity_day
    left join daily_clicks
        on {{ spine }}.{{ entity }} = daily_clicks.{{ entity }}
        and {{ spine }}.activity_day = daily_clicks.activity_day

)
{%- endmacro %}
