{% macro incremental_from() -%}
    {#- On an incremental run of an incremental model: the first day ('YYYY-MM-DD') whose
        validated records changed since the last build, as the orchestrator passes it
        (orchestration/incremental_dbt.py); rows from that day on are recomputed and earlier
        ones kept. none on a first or --full-refresh build, and when no day was passed: then
        every row is recomputed, so a plain `dbt build` by hand is never wrong, only slower. -#}
    {{- return(var('incremental_from', none) if is_incremental() else none) -}}
{%- endmacro %}

{% macro delete_recomputed_rows(time_column, always_recomputed='false') -%}
    {#- Pre-hook of an incremental model: drop the rows this run recomputes (stamped at or after
        incremental_from(), and those matching `always_recomputed`), or every row when it is
        none. Nothing on a full build, which replaces the table. -#}
    {%- if is_incremental() -%}
        {%- set cut = incremental_from() -%}
        delete from {{ this }}
        {% if cut %}where {{ time_column }} >= cast('{{ cut }}' as timestamp) or ({{ always_recomputed }}){% endif %}
    {%- endif -%}
{%- endmacro %}

{% macro last_rows_before_cut(relation, partition_by, order_by, keep) -%}
    {#- `relation`'s rows an incremental run needs for windows over the last `keep` rows (in
        `order_by` order, per `partition_by`) that end at or after incremental_from(): every row
        from the cut on, and the last `keep` rows of each partition before it. All rows on a
        full build. `order_by`: the window's ascending sort columns, the time column first. -#}
    {%- set cut = incremental_from() -%}
    {%- if cut -%}
        select * from {{ relation }} where {{ order_by[0] }} >= cast('{{ cut }}' as timestamp)
        union all
        select * from {{ relation }} where {{ order_by[0] }} < cast('{{ cut }}' as timestamp)
        qualify row_number() over (
            partition by {{ partition_by }} order by {{ order_by | join(' desc, ') }} desc
        ) <= {{ keep }}
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}
