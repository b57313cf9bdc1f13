"""The printed report and benchmarks/RESULTS.md: tables, targets, details."""

from runs import valid_text
from scenarios import REGIMES, mark, regime_target
from settings import (
    QUICK_VALIDATE_ALL_UP_TO,
    QUICK_VALIDATE_STRIDE,
    SIZES,
    UNLIMITED_RATE,
    VALIDATE_ALL_UP_TO,
    VALIDATE_STRIDE,
)

HEADERS = [
    "scen.",
    "tap",
    "streams",
    "contacts",
    "records",
    "requests",
    "wall s",
    "floor s",
    "binds",
    "wall/floor",
    "rec/s",
    "CPU s/1k rec",
    "peak RSS MB",
    "429s",
    "valid (sample)",
]
ALIGN_LEFT = {0, 1, 2, 8, 14}


# Why wall/floor is what it is; written into RESULTS.md with every run.
CRITICAL_PATH = [
    "A sync cannot beat floor = max(requests / rate limit, pages of its longest scan x round trip): "
    "the rate limit caps all requests, and a scan's pages come one after another (each cursor comes "
    "from the page before). Since memberships come from the contacts scan, that scan is usually the "
    "longest, and at a raised limit or a short round trip its pages, not the limit, decide the wall time.",
    "",
    "So the longest scan is scheduled as the critical path (`tap_autopilot/http/rate_limit.py`, "
    "`scheduler.py`). The limiter keeps two rules: no window of 1.02 s holds more starts than the limit "
    "(real starts, taken when a thread leaves the limiter), and the pages of scans of known length start "
    "one interval (1.02 / rate) apart. When the critical scan's request starts and its pace is below the "
    "limit, its next starts in the coming window are booked, a cycle (round trip plus the page's "
    "processing) apart; the bookings count in the window, so the other scans' requests leave them their "
    "room, and its requests start at once, off the interval grid. It books only when that finishes the "
    "pages all scans have left sooner than waiting for the grid (at 5 r/s and 300 ms its 3.4 starts a "
    "window would leave the others 1 of 5 while the limit binds). The first window of a run, and the "
    "window after a 429's pause, count as used evenly: no burst the server could count with another "
    "process's requests (the benchmark's discovery run drew a 429 before this rule).",
    "",
    "The contacts scan reads one page ahead (`client.read_ahead`): its next request goes out from its "
    "own thread as soon as the page's cursor is known (read from the page's last bytes, before the "
    "parse), while the page is parsed, transformed and written, so taking a page is off the critical "
    "path. The lists and segments listings are requested at once, each on its own thread, and the "
    "contacts scan starts alongside them (its first page's memberships wait for the list ids).",
    "",
    "The page ahead is handed to the scan's thread only once the next page's request has been "
    "written (`read_ahead.py`): Python runs one thread at a time, and the thread taking a page would "
    "otherwise hold the interpreter while the next request is prepared (2-3 ms a page at 50 ms).",
    "",
    "What remains above the floor: the tap's startup and exit (under Targets: a run that selects nothing, "
    "spawn to exit, next to a Python that only imports the tap's libraries), the limiter's 2% slack "
    "(requests / rate x 1.02 when the rate binds), and, when the scan binds, each page's time beyond "
    "the sandbox's latency, which the floor does not count: the request and the reply over the socket "
    "and the parse (a bare client's share, and more while the other scans' pages are parsed and "
    "written by the same process; the sandbox's latency includes building the page). The shorter the "
    "round trip, the larger their part of the floor. When the contacts pages bind, the bench measures "
    "that part: `benchmarks/sequential_client.py`, a fresh interpreter that imports the tap's libraries "
    "and reads the same pages one after another with nothing else to do, is timed on the same sandbox "
    "(its wall/floor is under Targets). No tap reads the pages faster than it.",
]


def table_rows(runs):
    rows = []
    for r in runs:
        floor = f"{r['floor']:.2f}" if r["floor"] else "n/a"
        ratio = f"{r['wall'] / r['floor']:.3f}" if r["floor"] else "n/a"
        requests = f"{r['requests']:,}"
        if r["min_requests"] is not None and r["requests"] != r["min_requests"]:
            requests += f" (min {r['min_requests']:,})"
        rows.append(
            [
                r["scenario"],
                r["tap"],
                r["mix"],
                f"{r['contacts']:,}",
                f"{r['records']:,}",
                requests,
                f"{r['wall']:.2f}",
                floor,
                r["binds"] or "n/a",
                ratio,
                f"{r['records'] / r['wall']:,.0f}" if r["wall"] else "-",
                f"{r['cpu'] / r['records'] * 1000:.3f}" if r["records"] else "-",
                f"{r['rss_mb']:.1f}",
                str(r["429"]),
                valid_text(r),
            ]
        )
    return rows


def text_table(runs):
    rows = [HEADERS] + table_rows(runs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    out = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i in ALIGN_LEFT else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def markdown_table(runs):
    out = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i in ALIGN_LEFT else "--:" for i in range(len(HEADERS))) + "|",
    ]
    for row in table_rows(runs):
        out.append("| " + " | ".join(row) + " |")
    return out


def scenario_descriptions(mode):
    s = SIZES[mode]
    return [
        f"1. zero latency, no rate limit (tap max_requests_per_second {UNLIMITED_RATE}), "
        f"{s['s1']['contacts']:,} contacts / {s['s1']['lists']} lists / {s['s1']['segments']} segments, all streams.",
        f"2. same, {s['s2']['contacts']:,} contacts: contacts only, then all streams.",
        f"3. 100 ms latency, sandbox limit 20 r/s, tap max_requests_per_second 20, "
        f"{s['s3']['contacts']:,} contacts / {s['s3']['lists']} lists / {s['s3']['segments']} segments, all streams.",
        f"4. 100 ms latency, 5 r/s on both sides, {s['s4']['contacts']:,} contacts / {s['s4']['lists']} lists / "
        f"{s['s4']['segments']} segments, all streams.",
        f"5. the published tap 0.3.0 and ours on one sandbox ({s['s5']['contacts']:,} contacts / "
        f"{s['s5']['lists']} lists / {s['s5']['segments']} segments, zero latency, no limit), same streams "
        "(0.3.0 has no lists_contacts and paces itself at 20 r/s).",
        f"6. a list-heavy account ({s['s6']['contacts']:,} contacts / {s['s6']['lists']} lists / "
        f"{s['s6']['segments']} segments, each contact on about three lists), 50 ms latency, 10 r/s on both sides, "
        "all streams: memberships list by list, then from the contacts scan (`lists_contacts_source`), then "
        "the published tap 0.3.0 on its four streams with the sandbox's limit lifted (its first 429 would end it).",
        "parser: the page parser's fallback: one contacts page of the default data parsed as it is (orjson) and with "
        "one bad value in it (orjson refuses it; the standard library's parser reads it), in-process.",
    ] + [
        f"{number}. rate-limit regime: {latency_ms} ms latency, {rate} r/s on both sides, "
        f"{s['s' + number]['contacts']:,} contacts / {s['s' + number]['lists']} lists / "
        f"{s['s' + number]['segments']} segments, all streams (target wall/floor <= {regime_target(rate):.2f})."
        for number, rate, latency_ms in REGIMES
    ]


def targets(bench):
    """The performance targets, checked against the figures (reported, never asserted)."""
    lines = []

    ours = [r for r in bench.runs if r["tap"] == "ours"]
    for r in ours:
        if r["scenario"] == "3" and r["floor"]:
            ratio = r["wall"] / r["floor"]
            lines.append(
                f"- Scenario 3 (100 ms, 20 r/s): wall/floor {ratio:.3f} (target <= 1.15: "
                f"{mark(ratio <= 1.15)}); 429s {r['429']} (target 0: {mark(r['429'] == 0)})."
            )
        if r["scenario"] == "4" and r["floor"]:
            ratio = r["wall"] / r["floor"]
            lines.append(
                f"- Scenario 4 (100 ms, 5 r/s): wall/floor {ratio:.3f}; 429s {r['429']} "
                f"(target 0: {mark(r['429'] == 0)})."
            )
    rates = {number: rate for number, rate, _ in REGIMES}
    for r in ours:
        if r["scenario"] in rates and r["floor"]:
            ratio, target = r["wall"] / r["floor"], regime_target(rates[r["scenario"]])
            lines.append(
                f"- Scenario {r['scenario']} ({rates[r['scenario']]} r/s, {r['latency_ms']} ms): wall/floor "
                f"{ratio:.3f}, {r['binds']} binding (target <= {target:.2f}: {mark(ratio <= target)}); "
                f"429s {r['429']} (target 0: {mark(r['429'] == 0)})."
            )
            if r.get("sequential_wall"):
                lines.append(
                    f"  The sequential client (benchmarks/sequential_client.py: the same contacts pages and "
                    f"nothing else) took {r['sequential_wall']:.2f} s, wall/floor "
                    f"{r['sequential_wall'] / r['floor']:.3f}; ours is {r['wall'] / r['sequential_wall']:.3f} of it."
                )
            if r.get("startup_wall"):
                lines.append(
                    f"  A run of ours that selects nothing takes {r['startup_wall']:.2f} s from spawn to exit, and a "
                    f"Python that only imports requests, singer-python and orjson {r['libraries_wall']:.2f} s; the "
                    f"floor counts neither. Without the first, wall/floor "
                    f"{(r['wall'] - r['startup_wall']) / r['floor']:.3f}."
                )
    big = [r for r in ours if r["scenario"] == "2"]
    for r in big:
        lines.append(
            f"- Peak RSS at {r['contacts']:,} contacts ({r['mix']}): {r['rss_mb']:.1f} MB "
            f"(target < 80 MB: {mark(r['rss_mb'] < 80)})."
        )
    small = [r for r in ours if r["scenario"] == "1"]
    if small and big:
        lines.append(
            f"- RSS growth {small[0]['contacts']:,} -> {big[-1]['contacts']:,} contacts (all streams): "
            f"{small[0]['rss_mb']:.1f} -> {big[-1]['rss_mb']:.1f} MB."
        )
    s5 = getattr(bench, "s5", None)
    if s5:
        for item in s5["summary"]:
            lines.append(
                f"- CPU per record, {item['mix']}: ours {item['ours_us']:.1f} µs vs 0.3.0 "
                f"{item['theirs_us']:.1f} µs = {item['ratio']:.2f}x (target <= 0.5x: "
                f"{mark(item['ratio'] <= 0.5)}); excluding startup "
                + (
                    f"{item['ours_ex']:.1f} vs {item['theirs_ex']:.1f} µs = {item['ratio_ex']:.2f}x."
                    if item["ratio_ex"] is not None
                    else "n/a (too few records)."
                )
            )
            if item["mix"] == "contacts":
                lines.append(
                    f"- CPU per contact end to end (contacts only): {item['ours_us']:.1f} µs ("
                    + (f"{item['ours_ex']:.1f} µs" if item["ours_ex"] is not None else "n/a")
                    + f" excluding startup); target 50 µs: {mark(item['ours_us'] <= 50)}."
                )
    dups = [r for r in ours if r["dup_requests"]]
    lines.append(
        "- No page fetched twice (ours; retries after a 429 not counted): "
        + (
            "met in every run."
            if not dups
            else "NOT met: "
            + "; ".join(
                f"scenario {r['scenario']} {r['mix']}: {r['dup_requests']} repeats, e.g. {r['dup_examples'][0]}"
                for r in dups
            )
        )
    )
    extra = [r for r in ours if r["min_requests"] is not None and r["requests_ok"] > r["min_requests"]]
    lines.append(
        "- No needless request (ours: successful requests = pages + 1 listing per parent stream): "
        + (
            "met in every run."
            if not extra
            else "NOT met: "
            + "; ".join(
                f"scenario {r['scenario']} {r['mix']}: {r['requests_ok']} vs {r['min_requests']}" for r in extra
            )
        )
    )
    return lines


def details(bench):
    lines = [
        "| scen. | tap | streams | records per stream | requests by status | tap CPU user+sys s | "
        "sandbox CPU s | output MB | validated | validation s | notes |",
        "|---|---|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in bench.runs:
        per_stream = ", ".join(f"{k} {v:,}" for k, v in r["records_by_stream"].items())
        status = ", ".join(f"{k}: {v:,}" for k, v in r["status"].items())
        v = r["validation"]
        notes = list((r["count_mismatch"] and ["count mismatch: " + "; ".join(r["count_mismatch"])]) or [])
        notes += v["errors"][:2] + v["problems"][:2]
        if r["dup_requests"]:
            notes.append(f"{r['dup_requests']} pages fetched twice, e.g. `{r['dup_examples'][0]}`")
        if r["note"]:
            notes.append(r["note"])
        lines.append(
            f"| {r['scenario']} | {r['tap']} | {r['mix']} | {per_stream} | {status} | "
            f"{r['user']:.2f}+{r['sys']:.2f} | {r['sandbox_cpu']:.2f} | {r['bytes'] / 1e6:.1f} | "
            f"{v['checked']:,} | {v['seconds']:.1f} | {'; '.join(n.replace('|', '/') for n in notes)} |"
        )
    return lines


def print_report(bench, info, elapsed):
    print()
    print("tap-autopilot benchmark" + (" (--quick)" if bench.mode == "quick" else ""))
    print(
        "  (a load average near or above the core count means other work shared the machine: "
        "wall times and CPU figures are then noisier)"
    )
    for key, value in info.items():
        print(f"  {key:22} {value}")
    print()
    if bench.runs:
        print("\n".join(text_table(bench.runs)))
        print()
    for title, lines in bench.sections:
        print(title)
        print("\n".join("  " + line if line else "" for line in lines))
        print()
    target_lines = targets(bench) if bench.runs else []
    if target_lines:
        print("Targets")
        print("\n".join("  " + line for line in target_lines))
        print()
    print(f"Bench time {elapsed:.0f} s.")


def markdown_report(bench, info, elapsed, argv):
    out = [
        "# tap-autopilot benchmark results",
        "",
        f"Written by `{' '.join(['benchmarks/run.py'] + argv)}` (`make bench`) in {elapsed:.0f} s. "
        "Figures are measured, not asserted; they move with the machine's load.",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {key}: {value}" for key, value in info.items()]
    out += ["", "## Scenarios", ""] + scenario_descriptions(bench.mode)
    out += [
        "",
        "Each scenario starts a fresh sandbox subprocess; the tap runs as a subprocess with its "
        "stdout read by a counting sink. CPU and peak RSS are the tap process's own rusage (os.wait4), "
        "not the sandbox's. The floor is max(successful requests / rate limit, the longest scan's pages x the "
        "round trip) (the sandbox's latency as the round trip: a scan's pages come one after another; n/a without "
        "a limit or latency), and 'binds' names the larger term; "
        "requests shows `(min N)` when the count differs from the pages plus listings the data needs. "
        "'valid' is records that passed validation against the SCHEMA the tap sent / records checked "
        + (
            f"(all records up to {VALIDATE_ALL_UP_TO:,} per stream, then one in {VALIDATE_STRIDE}), "
            if bench.mode == "full"
            else f"(--quick: all records up to {QUICK_VALIDATE_ALL_UP_TO:,} per stream, then one in "
            f"{QUICK_VALIDATE_STRIDE}), "
        )
        + "with the "
        "records-per-stream counts checked against the sandbox's dataset.",
        "",
        "## Results",
        "",
    ]
    out += markdown_table(bench.runs)
    for title, lines in bench.sections:
        out += ["", f"## {title}", ""] + lines
    target_lines = targets(bench) if bench.runs else []
    if target_lines:
        out += ["", "## Targets", ""] + target_lines
    out += ["", "## The floor and the critical path", ""] + CRITICAL_PATH
    if bench.runs:
        out += ["", "## Details", ""] + details(bench)
    return "\n".join(out).rstrip() + "\n"
