-- One row per smart segment, with how many contacts are in it now and how many of them unsubscribed.
{{ autopilot.groups_with_member_counts(ref('stg_autopilot__smart_segments'), ref('autopilot__segment_memberships'), 'segment_id') }}
