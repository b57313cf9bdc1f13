{# Fails for every combination of `columns` found on more than one row (dbt core has a unique
   test for one column only, and this package depends on no other package). #}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_found
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
