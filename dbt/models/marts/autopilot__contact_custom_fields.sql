-- One row per contact and custom field it holds a value of: every entry of the contact's
-- custom_fields array (fields created after discovery included) but deleted ones, with the
-- value typed by the field's type. A value that does not read as its type is null there and
-- stays in value_text.
with entries as (
  select
    contacts.contact_id,
    {{ autopilot.json_text('entry', 'kind') }} as field_name,
    {{ autopilot.json_text('entry', 'field_type') }} as field_type,
    nullif({{ autopilot.json_text('entry', 'value') }}, '') as value_text,
    coalesce({{ autopilot.text_boolean(autopilot.json_text('entry', 'deleted')) }}, false) as is_deleted
  from {{ ref('stg_autopilot__contacts') }} as contacts
  {{ autopilot.join_json_array_elements('contacts.custom_fields', 'custom_field_entries', 'entry') }}
),

kept as (
  select
    entries.*,
    -- a field listed twice on one contact (never seen): one of its entries, the same every build
    row_number() over (partition by contact_id, field_name order by value_text) as entry_rank
  from entries
  where not is_deleted and field_name is not null
),

typed as (
  select
    contact_id,
    field_name,
    field_type,
    -- By the field's type, in any case ("Boolean"), as discovery reads it for the typed columns.
    case
      when lower(field_type) in ('integer', 'float', 'number', 'decimal') then 'number'
      when lower(field_type) = 'boolean' then 'boolean'
      when lower(field_type) in ('date', 'datetime', 'date-time', 'timestamp') then 'timestamp'
      else 'text'
    end as kind,
    value_text
  from kept
  where entry_rank = 1
)

select
  contact_id,
  field_name,
  field_type,
  kind,
  value_text,
  case when kind = 'number' then {{ autopilot.safe_number('value_text') }} end as value_number,
  case when kind = 'boolean' then {{ autopilot.text_boolean('value_text') }} end as value_boolean,
  case when kind = 'timestamp' then {{ autopilot.safe_timestamp('value_text') }} end as value_timestamp
from typed
