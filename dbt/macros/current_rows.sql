{#
  Which rows of a raw table are current. Every staging model goes through current_rows, and
  the one rule for "which table version is current" is current_version below: when the tap
  records completed passes in the warehouse, that macro is the only thing to change.
#}

{# The current table version of a stream: for now the highest one loaded. A pass that was
   interrupted has its version loaded too, so between an interrupted run and the run that
   completes it this shows that pass's rows (docs/analytics.md). Null when no row has a
   version (contacts replicated incrementally). #}
{% macro current_version(relation, stream) -%}
  (select max(table_version) from {{ relation }})
{%- endmacro %}


{# The rows of `relation` to keep: those of the current version (every row when there is
   none), minus the rows the target soft-deleted (_sdc_deleted_at set), and one row per key
   (the most recently loaded, then `order_by`) for targets that append. #}
{% macro current_rows(relation, stream, key_columns, order_by=[]) -%}
  {%- set columns = autopilot.column_names(relation) -%}
  {%- set recency = [] -%}
  {%- for column in order_by -%}{%- do recency.append(column) -%}{%- endfor -%}
  {#- The _sdc_* columns a target may add, newest load first; absent ones are skipped. -#}
  {%- for column in ['_sdc_batched_at', '_sdc_received_at', '_sdc_sequence', '_sdc_extracted_at'] -%}
    {%- if column in columns -%}{%- do recency.append(column ~ ' desc nulls last') -%}{%- endif -%}
  {%- endfor -%}
  select * from (
    select
      loaded.*,
      row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by {{ (recency or ['1']) | join(', ') }}
      ) as autopilot_row_rank
    from {{ relation }} as loaded
    where (
      loaded.table_version = {{ autopilot.current_version(relation, stream) }}
      or {{ autopilot.current_version(relation, stream) }} is null
    )
    {%- if '_sdc_deleted_at' in columns %}
      and loaded._sdc_deleted_at is null
    {%- endif %}
  ) as ranked
  where autopilot_row_rank = 1
{%- endmacro %}


{# Lower-case column names of a relation (empty while dbt parses, before it can look). #}
{% macro column_names(relation) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set names = [] -%}
  {%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do names.append(column.name | lower) -%}
  {%- endfor -%}
  {{ return(names) }}
{%- endmacro %}
