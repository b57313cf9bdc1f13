-- One row per list, with how many contacts are on it now and how many of them unsubscribed.
with members as (
  select
    memberships.list_id,
    count(*) as member_count,
    sum(case when contacts.is_unsubscribed then 1 else 0 end) as unsubscribed_member_count
  from {{ ref('autopilot__list_memberships') }} as memberships
  left join {{ ref('stg_autopilot__contacts') }} as contacts
    on contacts.contact_id = memberships.contact_id
  group by memberships.list_id
)

select
  lists.list_id,
  lists.title,
  cast(coalesce(members.member_count, 0) as integer) as member_count,
  cast(coalesce(members.unsubscribed_member_count, 0) as integer) as unsubscribed_member_count
from {{ ref('stg_autopilot__lists') }} as lists
left join members
  on members.list_id = lists.list_id
