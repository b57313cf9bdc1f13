"""Run the published tap-autopilot 0.3.0 against another API root (benchmark use only).

The published tap has no base_url setting: it builds every URL from its
module-level BASE_URL. This wrapper sets that from --base-url URL (or the
PUBLISHED_TAP_BASE_URL environment variable), then calls its main() with the
remaining arguments. Run it with the published tap's own interpreter:

    .tools/tap-autopilot-0.3.0/bin/python benchmarks/published_tap.py \
        --base-url http://127.0.0.1:PORT/v1 -c config.json --properties props.json
"""

import os
import sys


def _take_base_url(argv):
    base_url = os.environ.get("PUBLISHED_TAP_BASE_URL")
    rest = []
    args = iter(argv)
    for arg in args:
        if arg == "--base-url":
            base_url = next(args, None)
        elif arg.startswith("--base-url="):
            base_url = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return base_url, rest


def main():
    base_url, rest = _take_base_url(sys.argv[1:])
    if not base_url:
        sys.exit("published_tap.py: give --base-url URL or set PUBLISHED_TAP_BASE_URL")
    # Keep this script's own directory off the import path, so `tap_autopilot`
    # resolves to the published package installed in this interpreter's venv.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    import tap_autopilot  # the published 0.3.0 package

    tap_autopilot.BASE_URL = base_url.rstrip("/")
    sys.argv = [sys.argv[0]] + rest
    tap_autopilot.main()


if __name__ == "__main__":
    main()
