-- One row per contact, with the number of lists and smart segments it is in now and the
-- flags analysts filter on.
with list_counts as (
  select contact_id, count(*) as list_count
  from {{ ref('autopilot__list_memberships') }}
  group by contact_id
),

segment_counts as (
  select contact_id, count(*) as segment_count
  from {{ ref('autopilot__segment_memberships') }}
  group by contact_id
)

select
  contacts.contact_id,
  contacts.email,
  contacts.first_name,
  contacts.last_name,
  contacts.name,
  contacts.company,
  contacts.title,
  contacts.status,
  contacts.lead_source,
  contacts.created_at,
  contacts.updated_at,
  contacts.is_unsubscribed,
  contacts.bounced_mail_count > 0 or contacts.hard_bounced_mail_count > 0 as has_bounced,
  contacts.hard_bounced_mail_count > 0 as has_hard_bounced,
  cast(coalesce(list_counts.list_count, 0) as integer) as list_count,
  cast(coalesce(segment_counts.segment_count, 0) as integer) as segment_count
from {{ ref('stg_autopilot__contacts') }} as contacts
left join list_counts
  on list_counts.contact_id = contacts.contact_id
left join segment_counts
  on segment_counts.contact_id = contacts.contact_id
