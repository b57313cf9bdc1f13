-- One row per smart segment of the current pass.
with current_rows as (
  {{ autopilot.current_rows('smart_segments', ['segment_id']) }}
)

select
  segment_id,
  title,
  cast(table_version as {{ dbt.type_bigint() }}) as table_version
from current_rows
