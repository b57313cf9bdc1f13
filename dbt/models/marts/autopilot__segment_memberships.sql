-- One row per contact in a smart segment, now: memberships of segments that exist now.
select
  memberships.segment_id,
  memberships.contact_id
from {{ ref('stg_autopilot__segment_memberships') }} as memberships
inner join {{ ref('stg_autopilot__smart_segments') }} as segments
  on segments.segment_id = memberships.segment_id
