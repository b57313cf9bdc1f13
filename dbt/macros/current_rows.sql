{#
  Which rows of a raw table are current. Every staging model goes through current_rows, and
  the one rule for "which table version is current" is current_version below.
#}

{# The table version of the stream's last complete pass, as the tap recorded it in
   completed_passes (docs/state.md, "Completed passes"); the highest version loaded when that
   table is not there (the stream not selected) or has no row for the stream yet. Null when
   no row has a version (contacts replicated incrementally). #}
{% macro current_version(relation, stream) -%}
  {%- set passes = autopilot.completed_passes_relation() -%}
  {%- if passes is not none -%}
  coalesce(
    (select max(table_version) from {{ passes }} where stream_name = '{{ stream }}'),
    (select max(table_version) from {{ relation }})
  )
  {%- else -%}
  (select max(table_version) from {{ relation }})
  {%- endif -%}
{%- endmacro %}


{# The loaded completed_passes table, or none when the target has not created it. #}
{% macro completed_passes_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {{ return(load_relation(source('autopilot', 'completed_passes'))) }}
{%- endmacro %}


{# The rows of the stream's raw table (source autopilot.<stream>) to keep: those of the current
   version or a later one (every row when there is none; rows without a version come from
   incremental syncs), minus the rows the
   target soft-deleted (_sdc_deleted_at set), and one row per key (the most recently loaded,
   then `order_by`) for targets that append. A later version is a pass under way or
   interrupted: a target that upserts has moved the rows it re-read to that version, so they
   are kept with the rows it has not reached yet, and the last complete pass stays whole. #}
{% macro current_rows(stream, key_columns, order_by=[]) -%}
  {%- set relation = source('autopilot', stream) -%}
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
    -- once per model: each expansion of current_version reads the raw table again
    cross join (select {{ autopilot.current_version(relation, stream) }} as version_number) as current_pass
    where (
      loaded.table_version is null
      or current_pass.version_number is null
      or loaded.table_version >= current_pass.version_number
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
