-- One row per list, with how many contacts are on it now and how many of them unsubscribed.
{{ autopilot.groups_with_member_counts(ref('stg_autopilot__lists'), ref('autopilot__list_memberships'), 'list_id') }}
