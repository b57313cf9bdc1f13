{# Each group (a list or a smart segment) with how many contacts are in it now and how many of
   them unsubscribed: the one query behind autopilot__lists and autopilot__smart_segments. #}
{% macro groups_with_member_counts(groups, memberships, key) -%}
with members as (
  select
    memberships.{{ key }},
    count(*) as member_count,
    sum(case when contacts.is_unsubscribed then 1 else 0 end) as unsubscribed_member_count
  from {{ memberships }} as memberships
  left join {{ ref('stg_autopilot__contacts') }} as contacts
    on contacts.contact_id = memberships.contact_id
  group by memberships.{{ key }}
)

select
  groups.{{ key }},
  groups.title,
  cast(coalesce(members.member_count, 0) as integer) as member_count,
  cast(coalesce(members.unsubscribed_member_count, 0) as integer) as unsubscribed_member_count
from {{ groups }} as groups
left join members
  on members.{{ key }} = groups.{{ key }}
{%- endmacro %}
