"""Only for tests/unit/test_client.py until it imports streams.contacts: the contacts scan
lives in streams/contacts.py. Delete this module then."""

from tap_autopilot.streams.contacts import ContactsScan

__all__ = ["ContactsScan"]
