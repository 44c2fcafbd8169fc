{% test parallel_json_lists(model, column_name, keys) %}
{#- Fails with every row whose JSON object is missing one of `keys` or holds lists of different
    lengths under them: the engagement log stores one event across parallel lists, so their
    positions must line up. -#}
select *
from {{ model }}
where {% for key in keys -%}
    {{ json_list_length(column_name, key) }} is null
    or {{ json_list_length(column_name, key) }} != {{ json_list_length(column_name, keys[0]) }}
    {%- if not loop.last %} or {% endif %}
{%- endfor %}
{% endtest %}
