{% test parallel_lists(model, column_name, others) %}
{#- Fails with every row where a list column and its companions differ in length: the engagement
    log stores one event across parallel lists, so their positions must line up. -#}
select *
from {{ model }}
where {% for other in others -%}
    len({{ column_name }}) != len({{ other }}){% if not loop.last %} or {% endif %}
{%- endfor %}
{% endtest %}
