{#- Rollback examples must not leak the future: every example's history ends strictly before its
    label, holds exactly the user's last history_length watches before the label (so the label
    watch itself and anything after it are absent), and its newest watch is the user's last
    watch before label_time. Returns the offending examples. -#}
with

examples as (

    select * from {{ ref('retrieval_training_examples') }}

),

watches as (

    select * from {{ ref('stg_raw__watches') }}

),

earlier_watches as (

    select
        examples.user_id,
        examples.label_video_id,
        examples.label_time,
        count(watches.watch_time) as n_earlier_watches,
        max(watches.watch_time) as last_earlier_watch_time
    from examples
    left join watches
        on examples.user_id = watches.user_id
        and watches.watch_time < examples.label_time
    group by all

),

final as (

    select
        examples.*,
        earlier_watches.n_earlier_watches,
        earlier_watches.last_earlier_watch_time
    from examples
    inner join earlier_watches
        on examples.user_id = earlier_watches.user_id
        and examples.label_video_id = earlier_watches.label_video_id
        and examples.label_time = earlier_watches.label_time
    where examples.history_last_watch_time >= examples.label_time
        or examples.history_last_watch_time is distinct from earlier_watches.last_earlier_watch_time
        or {{ list_length('examples.history_video_ids') }}
            != least(earlier_watches.n_earlier_watches, {{ var('history_length') }})

)

select * from final
