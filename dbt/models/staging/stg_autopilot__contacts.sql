-- One row per contact: its latest row (incremental contacts are upserted or appended, never
-- deleted), or, with contacts in full-table mode, its row of the current pass.
with current_rows as (
  {{ autopilot.current_rows('contacts', ['contact_id'], order_by=['updated_at desc nulls last']) }}
)

select
  contact_id,
  email,
  first_name,
  last_name,
  name,
  company,
  title,
  status,
  lead_source,
  coalesce(unsubscribed, false) as is_unsubscribed,
  {{ autopilot.json_array_length(autopilot.json_array('mail_bounced')) }} as bounced_mail_count,
  {{ autopilot.json_array_length(autopilot.json_array('mail_hardbounced')) }} as hard_bounced_mail_count,
  created_at,
  updated_at,
  {{ autopilot.json_array('custom_fields') }} as custom_fields,
  cast(table_version as {{ dbt.type_bigint() }}) as table_version
from current_rows
