{#- The SQL the two warehouses spell differently, one macro each, dispatched on the adapter:
    duckdb__ (the default profile: the text the models always had) and spark__ (the distributed
    profile, dbt-spark). Models call these instead of being copied per engine. -#}

{% macro list_type(element_type) -%}
    {#- The type of a list of `element_type` ('bigint', 'double' or 'varchar'). -#}
    {{- return(adapter.dispatch('list_type', 'vidrec')(element_type)) -}}
{%- endmacro %}

{% macro duckdb__list_type(element_type) -%}
    {{- element_type }}[]
{%- endmacro %}

{% macro spark__list_type(element_type) -%}
    array<{{ spark_type(element_type) }}>
{%- endmacro %}

{% macro map_type(key_type, value_type) -%}
    {{- return(adapter.dispatch('map_type', 'vidrec')(key_type, value_type)) -}}
{%- endmacro %}

{% macro duckdb__map_type(key_type, value_type) -%}
    map({{ key_type }}, {{ value_type }})
{%- endmacro %}

{% macro spark__map_type(key_type, value_type) -%}
    map<{{ spark_type(key_type) }}, {{ spark_type(value_type) }}>
{%- endmacro %}

{% macro spark_type(type_name) -%}
    {#- Spark requires a length for varchar; its unbounded text type is string. -#}
    {{- 'string' if type_name == 'varchar' else type_name -}}
{%- endmacro %}

{% macro empty_list(element_type) -%}
    {{- return(adapter.dispatch('empty_list', 'vidrec')(element_type)) -}}
{%- endmacro %}

{% macro duckdb__empty_list(element_type) -%}
    cast([] as {{ list_type(element_type) }})
{%- endmacro %}

{% macro spark__empty_list(element_type) -%}
    cast(array() as {{ list_type(element_type) }})
{%- endmacro %}

{% macro list_agg(expression) -%}
    {#- An aggregate (or window aggregate) collecting `expression` into a list in frame order.
        Spark's collect_list skips nulls where DuckDB's list keeps them: every caller passes a
        non-null expression. -#}
    {{- return(adapter.dispatch('list_agg', 'vidrec')(expression)) -}}
{%- endmacro %}

{% macro duckdb__list_agg(expression) -%}
    list({{ expression }})
{%- endmacro %}

{% macro spark__list_agg(expression) -%}
    collect_list({{ expression }})
{%- endmacro %}

{% macro list_length(list_expression) -%}
    {{- return(adapter.dispatch('list_length', 'vidrec')(list_expression)) -}}
{%- endmacro %}

{% macro duckdb__list_length(list_expression) -%}
    len({{ list_expression }})
{%- endmacro %}

{% macro spark__list_length(list_expression) -%}
    size({{ list_expression }})
{%- endmacro %}

{% macro list_last(list_expression) -%}
    {#- The last element of a list; null for an empty list. -#}
    {{- return(adapter.dispatch('list_last', 'vidrec')(list_expression)) -}}
{%- endmacro %}

{% macro duckdb__list_last(list_expression) -%}
    list_extract({{ list_expression }}, -1)
{%- endmacro %}

{% macro spark__list_last(list_expression) -%}
    element_at({{ list_expression }}, -1)
{%- endmacro %}

{% macro unigrams_and_bigrams(tokens) -%}
    {#- A token list's tokens followed by its adjacent pairs joined by a space (null: empty). -#}
    {{- return(adapter.dispatch('unigrams_and_bigrams', 'vidrec')(tokens)) -}}
{%- endmacro %}

{% macro duckdb__unigrams_and_bigrams(tokens) -%}
    list_concat(
            coalesce({{ tokens }}, []),
            list_transform(
                range(1, len(coalesce({{ tokens }}, []))),
                lambda i: {{ tokens }}[i] || ' ' || {{ tokens }}[i + 1]
            )
        )
{%- endmacro %}

{% macro spark__unigrams_and_bigrams(tokens) -%}
    concat(
            coalesce({{ tokens }}, cast(array() as array<string>)),
            -- each token from the second on, with the one before it (0-based index i of the
            -- slice is the previous token's index in the whole list)
            transform(
                slice(coalesce({{ tokens }}, cast(array() as array<string>)), 2, greatest(size({{ tokens }}), 0)),
                (token, i) -> concat({{ tokens }}[i], ' ', token)
            )
        )
{%- endmacro %}

{% macro sorted_distinct_flatten(list_of_lists) -%}
    {#- The distinct elements of a list of lists, sorted. -#}
    {{- return(adapter.dispatch('sorted_distinct_flatten', 'vidrec')(list_of_lists)) -}}
{%- endmacro %}

{% macro duckdb__sorted_distinct_flatten(list_of_lists) -%}
    list_sort(list_distinct(flatten({{ list_of_lists }})))
{%- endmacro %}

{% macro spark__sorted_distinct_flatten(list_of_lists) -%}
    array_sort(array_distinct(flatten({{ list_of_lists }})))
{%- endmacro %}

{% macro unix_seconds(timestamp) -%}
    {#- Seconds since 1970-01-01 of a naive UTC timestamp, as a double (fractions kept). -#}
    {{- return(adapter.dispatch('unix_seconds', 'vidrec')(timestamp)) -}}
{%- endmacro %}

{% macro duckdb__unix_seconds(timestamp) -%}
    epoch({{ timestamp }})
{%- endmacro %}

{% macro spark__unix_seconds(timestamp) -%}
    {#- the session time zone is UTC (profiles.yml), so the naive value reads as UTC -#}
    unix_micros(cast({{ timestamp }} as timestamp_ltz)) / 1e6
{%- endmacro %}

{% macro microseconds_between(start, end) -%}
    {{- return(adapter.dispatch('microseconds_between', 'vidrec')(start, end)) -}}
{%- endmacro %}

{% macro duckdb__microseconds_between(start, end) -%}
    date_diff('microsecond', {{ start }}, {{ end }})
{%- endmacro %}

{% macro spark__microseconds_between(start, end) -%}
    timestampdiff(MICROSECOND, {{ start }}, {{ end }})
{%- endmacro %}

{% macro days_from_to(start_date, end_date) -%}
    {#- Set-returning: one row per day from start_date to end_date (none when start is later),
        as a select-list expression. -#}
    {{- return(adapter.dispatch('days_from_to', 'vidrec')(start_date, end_date)) -}}
{%- endmacro %}

{% macro duckdb__days_from_to(start_date, end_date) -%}
    cast(
            unnest(
                generate_series(
                    {{ start_date }},
                    {{ end_date }},
                    interval 1 day
                )
            ) as date
        )
{%- endmacro %}

{% macro spark__days_from_to(start_date, end_date) -%}
    {#- Spark's sequence fails on a start after its end where DuckDB's is empty -#}
    explode(
            case
                when {{ start_date }} <= {{ end_date }}
                    then sequence({{ start_date }}, {{ end_date }}, interval 1 day)
                else cast(array() as array<date>)
            end
        )
{%- endmacro %}

{% macro json_object(fields) -%}
    {#- A JSON object as text from (key, expression) pairs, keys in the given order. -#}
    {{- return(adapter.dispatch('json_object', 'vidrec')(fields)) -}}
{%- endmacro %}

{% macro duckdb__json_object(fields) -%}
    to_json({
            {%- for key, expression in fields %}
            '{{ key }}': {{ expression }}{{ ',' if not loop.last }}
            {%- endfor %}
        })::varchar
{%- endmacro %}

{% macro spark__json_object(fields) -%}
    to_json(named_struct(
            {%- for key, expression in fields %}
            '{{ key }}', {{ expression }}{{ ',' if not loop.last }}
            {%- endfor %}
        ))
{%- endmacro %}

{% macro json_list_length(json_text, key) -%}
    {#- The length of the list under `key` of a JSON object (null when absent or not a list). -#}
    {{- return(adapter.dispatch('json_list_length', 'vidrec')(json_text, key)) -}}
{%- endmacro %}

{% macro duckdb__json_list_length(json_text, key) -%}
    json_array_length({{ json_text }}, '$.{{ key }}')
{%- endmacro %}

{% macro spark__json_list_length(json_text, key) -%}
    json_array_length(get_json_object({{ json_text }}, '$.{{ key }}'))
{%- endmacro %}

{% macro with_optional_columns(relation, optional_columns) -%}
    {#- A select of `relation`'s rows with every column of `optional_columns` (a typed CTE with no
        rows), null where the relation lacks it. -#}
    {{- return(adapter.dispatch('with_optional_columns', 'vidrec')(relation, optional_columns)) -}}
{%- endmacro %}

{% macro duckdb__with_optional_columns(relation, optional_columns) -%}
    {#- DuckDB reads the raw files by column name, so a log whose every file predates a column
        lacks it: add the columns by name. -#}
    select * from {{ optional_columns }}
    union all by name
    select * from {{ relation }}
{%- endmacro %}

{% macro spark__with_optional_columns(relation, optional_columns) -%}
    {#- The Spark raw tables declare every column of the source (create_raw_tables), files
        lacking one read it as null: the relation has them all already. -#}
    select * from {{ relation }}
{%- endmacro %}
