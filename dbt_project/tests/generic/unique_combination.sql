{% test unique_combination(model, columns) %}
{#- Fails with every key that occurs more than once: the multi-column primary-key test. -#}
select
    {{ columns | join(',\n    ') }},
    count(*) as n_rows
from {{ model }}
group by all
having count(*) > 1
{% endtest %}
