-- One row per smart segment, with how many contacts are in it now and how many of them unsubscribed.
with members as (
  select
    memberships.segment_id,
    count(*) as member_count,
    sum(case when contacts.is_unsubscribed then 1 else 0 end) as unsubscribed_member_count
  from {{ ref('autopilot__segment_memberships') }} as memberships
  left join {{ ref('stg_autopilot__contacts') }} as contacts
    on contacts.contact_id = memberships.contact_id
  group by memberships.segment_id
)

select
  segments.segment_id,
  segments.title,
  cast(coalesce(members.member_count, 0) as integer) as member_count,
  cast(coalesce(members.unsubscribed_member_count, 0) as integer) as unsubscribed_member_count
from {{ ref('stg_autopilot__smart_segments') }} as segments
left join members
  on members.segment_id = segments.segment_id
