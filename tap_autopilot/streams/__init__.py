"""The six streams, one module each kind: contacts.py, listings.py (lists, smart_segments),
memberships.py (lists_contacts, smart_segments_contacts), passes.py (completed_passes, which
the run writes as the others' passes complete); base.py holds what they share.

STREAMS is every stream, in the order the catalog lists them: discovery, --about, selection
and the sync take the streams from it.
"""

from tap_autopilot.streams.base import Stream
from tap_autopilot.streams.contacts import Contacts
from tap_autopilot.streams.listings import Lists, SmartSegments
from tap_autopilot.streams.memberships import ListsContacts, SmartSegmentsContacts
from tap_autopilot.streams.passes import CompletedPasses

STREAMS: dict[str, Stream] = {
    stream.tap_stream_id: stream
    for stream in (Contacts(), Lists(), ListsContacts(), SmartSegments(), SmartSegmentsContacts(), CompletedPasses())
}

__all__ = ["STREAMS", "Lists", "SmartSegments"]
