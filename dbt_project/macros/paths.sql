{% macro validated_dir() -%}
    {#- The validated layer: the raw rows that passed the row rules, same layout as the raw logs'. -#}
    {{- return(var('validated_dir', env_var('VIDREC_HOME', '.vidrec') ~ '/validated')) -}}
{%- endmacro %}

{% macro marts_dir() -%}
    {{- return(var('marts_dir', env_var('VIDREC_HOME', '.vidrec') ~ '/marts')) -}}
{%- endmacro %}

{% macro mart_location(mart_name) -%}
    {#- Every mart is written to `<marts_dir>/<mart>.parquet` (docs/architecture.md). -#}
    {{- return(marts_dir() ~ '/' ~ mart_name ~ '.parquet') -}}
{%- endmacro %}
