{% macro raw_dir() -%}
    {#- Directory of the raw Parquet logs (`<raw_dir>/<table>/day=YYYY-MM-DD/part-0.parquet`). -#}
    {{- return(var('raw_dir', env_var('VIDREC_HOME', '.vidrec') ~ '/raw')) -}}
{%- endmacro %}

{% macro marts_dir() -%}
    {{- return(var('marts_dir', env_var('VIDREC_HOME', '.vidrec') ~ '/marts')) -}}
{%- endmacro %}

{% macro mart_location(mart_name) -%}
    {#- Every mart is written to `<marts_dir>/<mart>.parquet` (docs/architecture.md). -#}
    {{- return(marts_dir() ~ '/' ~ mart_name ~ '.parquet') -}}
{%- endmacro %}
