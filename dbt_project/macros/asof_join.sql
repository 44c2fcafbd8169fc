{% macro asof_join(left, right, keys, left_time, operator, right_time, kind='left') -%}
{#- A FROM clause (without `from`) joining each row of `left` to the one row of `right` with the
    same `keys` whose `right_time` is the nearest that satisfies
    `left.left_time <operator> right.right_time`:
        '>='  the latest right row at or before the left row's time
        '>'   the latest right row strictly before it
        '<='  the earliest right row at or after it
    kind 'left' keeps left rows without a match (right columns null), 'inner' drops them. The
    select list refers to both sides by their names, as in any join. `right` must have one row
    per (keys, right_time), as every caller's does. -#}
    {%- if operator not in ('>=', '>', '<=') -%}
        {{ exceptions.raise_compiler_error("asof_join: operator must be '>=', '>' or '<=', got " ~ operator) }}
    {%- endif -%}
    {%- if kind not in ('left', 'inner') -%}
        {{ exceptions.raise_compiler_error("asof_join: kind must be 'left' or 'inner', got " ~ kind) }}
    {%- endif -%}
    {{- return(adapter.dispatch('asof_join', 'vidrec')(left, right, keys, left_time, operator, right_time, kind)) -}}
{%- endmacro %}

{% macro duckdb__asof_join(left, right, keys, left_time, operator, right_time, kind) -%}
{{ left }}
    asof {{ 'left ' if kind == 'left' }}join {{ right }}
        on {% for key in keys -%}
        {{ left }}.{{ key }} = {{ right }}.{{ key }}
        and {% endfor -%}
        {{ left }}.{{ left_time }} {{ operator }} {{ right }}.{{ right_time }}
{%- endmacro %}

{% macro spark__asof_join(left, right, keys, left_time, operator, right_time, kind) -%}
{#- Spark has no as-of join. Each distinct (keys, left time) finds its match by one window over
    the left and right times of its keys, sorted together: the running max of right times (or,
    for '<=', the min of those to come) is the match. At equal times the right row sorts before
    the left one where equality matches ('>='), after it where it does not ('>') and, for '<=',
    after it so the forward frame holds it. The left rows, with their match's time in
    `<right>_asof_<right_time>`, then join `right` on that time like any equi-join. -#}
    {%- set match_column = right ~ '_asof_' ~ right_time -%}
    {%- set right_first = operator == '>=' -%}
    (
        select
            {{ left }}.*,
            asof_matches.match_time as {{ match_column }}
        from {{ left }}
        left join (
            select
                {% for key in keys %}{{ key }}, {% endfor %}
                asof_time,
                {% if operator == '<=' -%}
                min(case when not is_left then asof_time end) over (
                    partition by {{ keys | join(', ') }}
                    order by asof_time, tie_order
                    rows between current row and unbounded following
                ) as match_time,
                {%- else -%}
                max(case when not is_left then asof_time end) over (
                    partition by {{ keys | join(', ') }}
                    order by asof_time, tie_order
                    rows between unbounded preceding and current row
                ) as match_time,
                {%- endif %}
                is_left
            from (
                select distinct
                    {% for key in keys %}{{ key }}, {% endfor %}
                    {{ left_time }} as asof_time,
                    true as is_left,
                    {{ 1 if right_first else 0 }} as tie_order
                from {{ left }}
                union all
                select distinct
                    {% for key in keys %}{{ key }}, {% endfor %}
                    {{ right_time }} as asof_time,
                    false as is_left,
                    {{ 0 if right_first else 1 }} as tie_order
                from {{ right }}
            ) as asof_times
        ) as asof_matches
            on {% for key in keys -%}
            {{ left }}.{{ key }} = asof_matches.{{ key }}
            and {% endfor -%}
            {{ left }}.{{ left_time }} = asof_matches.asof_time
            and asof_matches.is_left
    ) as {{ left }}
    {{ kind }} join {{ right }}
        on {% for key in keys -%}
        {{ left }}.{{ key }} = {{ right }}.{{ key }}
        and {% endfor -%}
        {{ left }}.{{ match_column }} = {{ right }}.{{ right_time }}
{%- endmacro %}
