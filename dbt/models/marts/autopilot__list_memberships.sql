-- One row per contact on a list, now: memberships of lists that exist now.
select
  memberships.list_id,
  memberships.contact_id
from {{ ref('stg_autopilot__list_memberships') }} as memberships
inner join {{ ref('stg_autopilot__lists') }} as lists
  on lists.list_id = memberships.list_id
