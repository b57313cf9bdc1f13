"""`python -m tap_autopilot`: the tap-autopilot command."""

from tap_autopilot.cli import main

main()
