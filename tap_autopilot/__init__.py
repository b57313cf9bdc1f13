"""tap-autopilot: a Singer tap for the Autopilot API (contacts, lists, smart segments
and their memberships). The command line is in tap_autopilot/cli.py."""

__version__ = "1.4.1"
