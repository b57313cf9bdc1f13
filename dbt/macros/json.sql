{#
  JSON and casts, the parts of SQL the warehouses disagree on. Each macro dispatches on the
  adapter (adapter.dispatch, search order: the root project, then this package), so a project
  on another warehouse can add its own `<adapter>__<name>` without copying a model.
#}

{# A column holding a JSON array (jsonb[], jsonb, json or JSON text), as the adapter's JSON
   type; '[]' when it is null or not an array. #}
{% macro json_array(column) -%}
  {{ return(adapter.dispatch('json_array', 'autopilot')(column)) }}
{%- endmacro %}

{% macro default__json_array(column) -%}
  {#- meltanolabs-target-postgres loads arrays of objects as jsonb[], pipelinewise as jsonb:
      to_jsonb turns both into one jsonb array. -#}
  coalesce(
    case when jsonb_typeof(to_jsonb({{ column }})) = 'array' then to_jsonb({{ column }}) end,
    '[]'::jsonb
  )
{%- endmacro %}

{% macro duckdb__json_array(column) -%}
  coalesce(
    case when json_type(cast({{ column }} as json)) = 'ARRAY' then cast({{ column }} as json) end,
    cast('[]' as json)
  )
{%- endmacro %}


{# The number of elements of a json_array(). #}
{% macro json_array_length(json_array) -%}
  {{ return(adapter.dispatch('json_array_length', 'autopilot')(json_array)) }}
{%- endmacro %}

{% macro default__json_array_length(json_array) -%}
  jsonb_array_length({{ json_array }})
{%- endmacro %}

{% macro duckdb__json_array_length(json_array) -%}
  cast(json_array_length({{ json_array }}) as integer)
{%- endmacro %}


{# A join that gives one row per element of a json_array(), the element as `element_alias`. #}
{% macro join_json_array_elements(json_array, table_alias, element_alias) -%}
  {{ return(adapter.dispatch('join_json_array_elements', 'autopilot')(json_array, table_alias, element_alias)) }}
{%- endmacro %}

{% macro default__join_json_array_elements(json_array, table_alias, element_alias) -%}
  cross join lateral jsonb_array_elements({{ json_array }}) as {{ table_alias }}({{ element_alias }})
{%- endmacro %}

{% macro duckdb__join_json_array_elements(json_array, table_alias, element_alias) -%}
  cross join unnest(json_extract({{ json_array }}, '$[*]')) as {{ table_alias }}({{ element_alias }})
{%- endmacro %}


{# One key of a JSON object, as text (a JSON string unquoted). #}
{% macro json_text(json_object, key) -%}
  {{ return(adapter.dispatch('json_text', 'autopilot')(json_object, key)) }}
{%- endmacro %}

{% macro default__json_text(json_object, key) -%}
  ({{ json_object }} ->> '{{ key }}')
{%- endmacro %}


{# true/false (also t/f, 1/0, yes/no, any case) as a boolean; anything else null. #}
{% macro text_boolean(text) -%}
  case lower({{ text }})
    when 'true' then true when 't' then true when '1' then true when 'yes' then true
    when 'false' then false when 'f' then false when '0' then false when 'no' then false
  end
{%- endmacro %}


{# Text that reads as a decimal number -> a number; anything else null (never an error). #}
{% macro safe_number(text) -%}
  {{ return(adapter.dispatch('safe_number', 'autopilot')(text)) }}
{%- endmacro %}

{% macro default__safe_number(text) -%}
  {#- numeric, not float: a 23-digit integer or 1e400 keeps its value. -#}
  case when trim({{ text }}) ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$'
    then cast(trim({{ text }}) as numeric) end
{%- endmacro %}

{% macro duckdb__safe_number(text) -%}
  case when isfinite(try_cast(trim({{ text }}) as double)) then try_cast(trim({{ text }}) as double) end
{%- endmacro %}


{# A time as the API sends it (ISO 8601 with any offset, RFC 1123 "Tue, 12 May 2015 21:41:31
   GMT", epoch milliseconds) -> a timestamp without time zone, in UTC; anything else null. #}
{% macro safe_timestamp(text) -%}
  {{ return(adapter.dispatch('safe_timestamp', 'autopilot')(text)) }}
{%- endmacro %}

{% macro default__safe_timestamp(text) -%}
  {#- With an offset (or GMT), through timestamptz; without one it is already UTC, and going
      through timestamptz would read it in the session's time zone. -#}
  case
    when {{ text }} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$'
      or {{ text }} ~ '^[A-Z][a-z]{2}, [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$'
      then cast({{ text }} as timestamp with time zone) at time zone 'UTC'
    when {{ text }} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$'
      then cast({{ text }} as timestamp)
    when {{ text }} ~ '^[0-9]{12,14}$'
      then to_timestamp(cast({{ text }} as bigint) / 1000.0) at time zone 'UTC'
  end
{%- endmacro %}

{% macro duckdb__safe_timestamp(text) -%}
  case
    when regexp_full_match({{ text }}, '[0-9]{4}-[0-9]{2}-[0-9]{2}[T ].*([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)')
      then try_cast({{ text }} as timestamp with time zone) at time zone 'UTC'
    when regexp_full_match({{ text }}, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?')
      then try_cast({{ text }} as timestamp)
    when regexp_full_match({{ text }}, '[A-Z][a-z]{2}, [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT')
      then try_strptime({{ text }}, '%a, %d %b %Y %H:%M:%S GMT')
    when regexp_full_match({{ text }}, '[0-9]{12,14}')
      then make_timestamp(cast({{ text }} as bigint) * 1000)
  end
{%- endmacro %}
