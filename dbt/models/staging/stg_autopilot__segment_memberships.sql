-- One row per (segment, contact) of the current pass of smart_segments_contacts.
with current_rows as (
  {{ autopilot.current_rows('smart_segments_contacts', ['segment_id', 'contact_id']) }}
)

select
  segment_id,
  contact_id,
  cast(table_version as {{ dbt.type_bigint() }}) as table_version
from current_rows
