-- One row per list of the current pass.
with current_rows as (
  {{ autopilot.current_rows('lists', ['list_id']) }}
)

select
  list_id,
  title,
  cast(table_version as {{ dbt.type_bigint() }}) as table_version
from current_rows
