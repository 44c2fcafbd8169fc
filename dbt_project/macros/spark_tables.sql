{% macro create_raw_tables() -%}
    {#- Make the raw logs readable as the `raw` source's tables (an on-run-start hook). -#}
    {{- return(adapter.dispatch('create_raw_tables', 'vidrec')()) -}}
{%- endmacro %}

{% macro duckdb__create_raw_tables() -%}
    {#- DuckDB reads the files directly (the source's external_location). -#}
{%- endmacro %}

{% macro spark__create_raw_tables() -%}
    {#- One external table per raw source over the validated layer's `<validated_dir>/<table>/`
        (the raw rows that passed the row rules), every file below it, with the
        columns and Spark types declared in _raw__sources.yml: a file lacking a column (one
        written before the column existed) reads it as null, as DuckDB's union_by_name does, and
        the day= directories never become a column. Dropped and created again on every run so
        files written since are listed; dropping an external table leaves its files. -#}
    {%- if execute %}
        {%- do run_query('create schema if not exists raw') %}
        {%- for source in graph.sources.values() if source.source_name == 'raw' %}
            {%- set columns = [] %}
            {%- for column in source.columns.values() %}
                {%- if not column.data_type %}
                    {{ exceptions.raise_compiler_error("raw." ~ source.name ~ "." ~ column.name ~ " declares no data_type") }}
                {%- endif %}
                {%- do columns.append(column.name ~ ' ' ~ column.data_type) %}
            {%- endfor %}
            {%- do run_query('drop table if exists raw.' ~ source.name) %}
            {%- do run_query(
                'create table raw.' ~ source.name ~ ' (' ~ columns | join(', ') ~ ') using parquet'
                ~ " options (recursiveFileLookup 'true')"
                ~ " location '" ~ validated_dir() ~ '/' ~ source.name ~ "'"
            ) %}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}

{% macro spark__location_clause() -%}
    {#- A model's `location` config (every mart's, mart_location) is where dbt-spark writes its
        table, as dbt-duckdb's external materialization does; without it, dbt-spark's own rule
        (location_root/alias, else the metastore's warehouse directory). Parquet tables cannot be
        replaced in place: the materialization drops the table first, and writing into the
        location it leaves needs spark.sql.legacy.allowNonEmptyLocationInCTAS (profiles.yml). -#}
    {%- set location = config.get('location', validator=validation.any[basestring]) -%}
    {%- if location is not none %}
    location '{{ location }}'
    {%- else %}
    {{ dbt_spark_location_root_clause() }}
    {%- endif %}
{%- endmacro %}

{% macro dbt_spark_location_root_clause() -%}
    {%- set location_root = config.get('location_root', validator=validation.any[basestring]) -%}
    {%- if location_root is not none %}
    location '{{ location_root }}/{{ model['alias'] }}'
    {%- endif %}
{%- endmacro %}
