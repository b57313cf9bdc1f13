#!/usr/bin/env python3
"""tap-autopilot benchmark (`make bench`).

Runs the installed CLI (.venv/bin/tap-autopilot) as a subprocess against a
fresh sandbox subprocess per scenario and prints, per run: contacts, requests
made (sandbox stats), wall time, the floor (max(requests / rate limit, the
longest scan's pages x round trip), and which term binds), wall/floor,
records per second, CPU seconds per 1,000 records and peak RSS of the tap
process (os.wait4 rusage of the child: the sandbox is not counted), and 429s.

The tap's stdout goes to a counting sink: RECORD lines are counted per stream
(not stored), other messages are parsed; a sample of RECORDs (all of them up
to a per-stream limit) is kept and validated against the SCHEMA the tap sent,
after the tap has exited, so a fast-but-wrong tap does not look good.

Scenarios (each on a fresh sandbox):
  1  zero latency, no rate limit, 10k contacts, all streams
  2  zero latency, no rate limit, 100k contacts: contacts only, then all streams
  3  100 ms latency, 20 r/s on both sides, 5k contacts / 10 lists / 5 segments
  4  100 ms latency, 5 r/s on both sides, same data
  5  side by side with the published tap-autopilot 0.3.0 (.tools/), same data,
     same streams: CPU per record of both and the ratio
  6  a list-heavy account (3k contacts, 12 lists, 3 segments), 50 ms, 10 r/s:
     memberships list by list, memberships from the scan, and the published tap 0.3.0
  parser   the page parser's fallback: a clean contacts page vs the same page with one bad value
  7-10  the rate-limit regimes, all streams: 5 r/s 100 ms 4k/10/5, 20 r/s 100 ms 5k/10/5,
        50 r/s 50 ms 5k/10/8, 5 r/s 300 ms 3k/6/6 (contacts/lists/segments); where the contacts
        pages bind the floor, the sequential client is timed on the same sandbox
  profile  scenario 1 under a per-thread cProfile (thread CPU time): top 15

Usage:
  .venv/bin/python benchmarks/run.py             # everything; writes benchmarks/RESULTS.md
  .venv/bin/python benchmarks/run.py --quick     # small sizes, a smoke run (< 60 s)
  .venv/bin/python benchmarks/run.py --only 3,5  # some scenarios (by number or name)

Figures are printed, never asserted. The exit status is 1 only when a run of
our tap failed or its output did not validate.

Files (this one is the entry point: arguments, the scenario loop, the report's output):
  settings.py         paths, sizes, validation sampling, log()
  machine.py          what the run was on (CPU, memory, Python versions, commit, load)
  sandbox_process.py  the sandbox as a subprocess, its admin API and CPU
  expected.py         records and fewest requests per stream, from the sandbox's dataset
  sink.py             the counting sink on the tap's stdout, and validation of its sample
  tap_process.py      one tap run under a rusage launcher; config and catalog files
  runs.py             Bench: runs our tap and the published one, one result row per run
  scenarios.py        the scenarios and their table (SCENARIOS)
  profiling.py        the profiled scenario
  parser_fallback.py  the page parser's fallback (scenario "parser")
  report.py           the printed report and RESULTS.md
  published_tap.py    runs the published 0.3.0 against the sandbox (its own interpreter)
  sequential_client.py  the least any tap can take to read the contacts pages (a reference)

The tap's modules are compiled first (compileall), as pip compiles an installed package.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from machine import machine_info
from report import markdown_report, print_report
from runs import Bench
from scenarios import SCENARIOS
from settings import RESULTS_MD, ROOT, TAP, VENV_PY, log


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="scenarios to run, by number or name: "
        + ", ".join(f"{n} ({name})" if n != name else n for n, name, _ in SCENARIOS),
    )
    parser.add_argument("--workers", type=int, help="the tap's max_concurrent_requests (default: the tap's)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each tap per stream mix in scenario 5; the least CPU counts (default 3)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a tap run is killed")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="Markdown output (default benchmarks/RESULTS.md for a full run of every "
        "scenario; none for --quick or --only unless given)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, profile)")
    return parser.parse_args(argv)


def chosen_scenarios(only):
    if not only:
        return SCENARIOS
    wanted = [w.strip().lower() for w in only.split(",") if w.strip()]
    chosen = []
    for number, name, function in SCENARIOS:
        if any(w in (number, name, "s" + number) or (len(w) > 2 and w in name) for w in wanted):
            chosen.append((number, name, function))
    if not chosen:
        raise SystemExit(f"--only {only!r} matches no scenario")
    return chosen


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for path in (VENV_PY, TAP):
        if not os.path.exists(path):
            raise SystemExit(f"bench: {path} is missing: run `make venv` (or `make setup`) first")
    scenarios = chosen_scenarios(args.only)
    # The tap as pip installs it, its modules compiled. An editable install run with
    # PYTHONDONTWRITEBYTECODE set (as on the machines this was measured on) would compile
    # them on every start: 0.03-0.1 s of every run's wall time that no installed tap pays.
    subprocess.run([VENV_PY, "-m", "compileall", "-q", os.path.join(ROOT, "tap_autopilot")], check=True)
    info = machine_info()
    for key, value in info.items():
        log(f"bench: {key}: {value}")
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="tap-autopilot-bench-")
    bench = Bench(args, workdir)
    try:
        for number, name, function in scenarios:
            scenario_started = time.perf_counter()
            try:
                function(bench)
                log(f"bench: scenario {number} ({name}) took {time.perf_counter() - scenario_started:.1f} s")
            except Exception as error:
                log(f"bench: scenario {number} ({name}) failed: {error!r}")
                bench.failed.append(f"scenario {number}")
                bench.sections.append((f"Scenario {number} ({name})", [f"Failed: {error!r}"]))
    except KeyboardInterrupt:
        log("bench: interrupted; reporting what ran")
    finally:
        elapsed = time.perf_counter() - started
        info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if args.keep:
            log(f"bench: work directory kept: {workdir}")
        else:
            subprocess.run(["rm", "-rf", workdir], check=False)
    print_report(bench, info, elapsed)
    results = args.results or (RESULTS_MD if not args.quick and not args.only else None)
    if results:
        with open(results, "w", encoding="utf-8") as handle:
            handle.write(markdown_report(bench, info, elapsed, argv))
        print(f"Wrote {os.path.relpath(results, os.getcwd())}.")
    if bench.failed:
        print("Our tap failed or wrote invalid output in: " + ", ".join(bench.failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
