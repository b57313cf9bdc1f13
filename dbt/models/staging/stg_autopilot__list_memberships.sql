-- One row per (list, contact) of the current pass of lists_contacts.
with current_rows as (
  {{ autopilot.current_rows('lists_contacts', ['list_id', 'contact_id']) }}
)

select
  list_id,
  contact_id,
  cast(table_version as {{ dbt.type_bigint() }}) as table_version
from current_rows
