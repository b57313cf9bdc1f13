"""CLI: serve the sandbox until SIGTERM/SIGINT; prints its base URL as the only stdout line."""

import argparse
import signal
import sys
import threading

from .server import Sandbox

# How long a thread may keep the interpreter while another waits for it (Python's default:
# 5 ms). A real server answers each request at its time however many others it is building;
# this one is one Python process, so an answer due while another thread built a page left up
# to several milliseconds late, on top of the latency the benchmark's floor counts.
SWITCH_INTERVAL_SECONDS = 0.0005


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m tap_autopilot.sandbox",
        description="Local Autopilot API v1 sandbox. Prints its base URL, then serves "
        "until SIGTERM/SIGINT. Admin endpoints: <root>/_admin/...",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--contacts", type=int, default=250)
    p.add_argument("--lists", type=int, default=3)
    p.add_argument("--segments", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    d = p.add_argument_group("data shape (default: like the live API's recorded responses)")
    d.add_argument(
        "--dense", action="store_true", help="every key on every document, typed values (the shape first assumed)"
    )
    d.add_argument(
        "--epoch-ms-share",
        type=float,
        default=0.0,
        metavar="F",
        help="share of contacts with epoch-ms created_at/updated_at",
    )
    d.add_argument(
        "--snake-case-share",
        type=float,
        default=0.0,
        metavar="F",
        help="share of contacts with snake_case standard fields",
    )
    d.add_argument(
        "--awkward-ids",
        action="store_true",
        help="one list and one segment id that must be percent-escaped in a URL path",
    )
    d.add_argument(
        "--awkward-values",
        action="store_true",
        help="values warehouses refuse as they are: a lone surrogate, 1e400, bytes that are not UTF-8, "
        "NULs, integers beyond 64 bits, two long custom field names alike in their first 70 characters",
    )
    f = p.add_argument_group("faults (all off by default)")
    f.add_argument(
        "--latency-ms", type=float, help="time from each API request to its answer (the page's building included)"
    )
    f.add_argument("--rate-limit", type=float, help="requests/second before answering 429")
    f.add_argument(
        "--retry-after",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send 'Retry-After: 1' with 429s (default: no, like the live API)",
    )
    f.add_argument("--error-every", type=int, metavar="N", help="every Nth request -> 500")
    f.add_argument("--drop-every", type=int, metavar="N", help="every Nth: close, no response")
    f.add_argument("--truncate-every", type=int, metavar="N", help="every Nth: half a body")
    f.add_argument("--missing-key-every", type=int, metavar="N", help="every Nth: 200 without the expected key")
    f.add_argument(
        "--garble-every", type=int, metavar="N", help="every Nth: 200 that is not JSON inside, its ending whole"
    )
    f.add_argument("--stall-every", type=int, metavar="N", help="every Nth: wait --stall-seconds before answering")
    f.add_argument("--stall-seconds", type=float, default=2.0)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    sb = Sandbox(
        contacts=args.contacts,
        lists=args.lists,
        segments=args.segments,
        seed=args.seed,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        verbose=args.verbose,
        dense=args.dense,
        epoch_ms_share=args.epoch_ms_share,
        snake_case_share=args.snake_case_share,
        awkward_ids=args.awkward_ids,
        awkward_values=args.awkward_values,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        retry_after=args.retry_after,
        error_every=args.error_every,
        drop_every=args.drop_every,
        truncate_every=args.truncate_every,
        missing_key_every=args.missing_key_every,
        garble_every=args.garble_every,
        stall_every=args.stall_every,
        stall_seconds=args.stall_seconds,
    )
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sb.start()
    print(sb.base_url, flush=True)
    while not stop.wait(0.5):  # a timed wait lets the signal handlers run promptly
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
