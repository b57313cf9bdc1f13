"""Bench: the configs, catalogs and runs of our tap and the published one, one result row per run."""

import json
import os
import subprocess
import time

from expected import expected, longest_scan, minimum_requests
from sandbox_process import tail
from settings import (
    API_KEY,
    MIX_LABELS,
    PUBLISHED_PY,
    PUBLISHED_WRAPPER,
    QUICK_VALIDATE_ALL_UP_TO,
    QUICK_VALIDATE_STRIDE,
    SEQUENTIAL_CLIENT,
    START_DATE,
    TAP,
    UNLIMITED_RATE,
    VALIDATE_ALL_UP_TO,
    VENV_PY,
    log,
)
from sink import Sink, validate
from tap_process import run_process, select_catalog, write_json


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.mode = "quick" if args.quick else "full"
        self.runs = []  # result rows (dicts), in order
        self.sections = []  # extra Markdown sections (title, lines)
        self.failed = []  # our tap's failures
        self.timeout = args.timeout
        self._catalogs = {}

    # --- configs and catalogs ---------------------------------------------

    def our_config(self, sandbox, rate, extra=None):
        config = {
            "api_key": API_KEY,
            "start_date": START_DATE,
            "base_url": sandbox.base_url,
            "max_requests_per_second": rate,
            "request_timeout": 60,
        }
        if self.args.workers:
            config["max_concurrent_requests"] = self.args.workers
        config.update(extra or {})
        name = f"config-{os.getpid()}-{len(self._catalogs)}-{rate}.json"
        return write_json(os.path.join(self.workdir, name), config)

    def _discovered(self, key, name, cmd):
        """The catalog `cmd` (a tap's --discover) writes, run once per key."""
        if key not in self._catalogs:
            result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.workdir, timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"{name} --discover failed: {result.stderr[-2000:]}")
            self._catalogs[key] = json.loads(result.stdout)
        return self._catalogs[key]

    def our_catalog(self, sandbox, config_path):
        return self._discovered(
            ("ours", sandbox.base_url), "tap-autopilot", [TAP, "--config", config_path, "--discover"]
        )

    def published_config(self):
        return write_json(
            os.path.join(self.workdir, "config-0.3.0.json"), {"api_key": API_KEY, "start_date": START_DATE}
        )

    def published_cmd(self, sandbox, *args):
        """A command of the published tap: its interpreter, the wrapper that points it at the sandbox, its config."""
        return [
            PUBLISHED_PY,
            PUBLISHED_WRAPPER,
            "--base-url",
            sandbox.base_url,
            "--config",
            self.published_config(),
            *args,
        ]

    def published_catalog(self, sandbox):
        key = ("0.3.0",)
        if key in self._catalogs:  # the config file is written once, with the catalog
            return self._catalogs[key]
        return self._discovered(key, "tap-autopilot 0.3.0", self.published_cmd(sandbox, "--discover"))

    # --- runs ---------------------------------------------------------------

    def sink_for(self, size):
        """Small scenarios: validate every record. --quick: a sparser sample (jsonschema
        costs ~0.6 ms a contact; the smoke run must stay under a minute)."""
        if self.mode == "quick":
            return Sink(validate_all_up_to=QUICK_VALIDATE_ALL_UP_TO, stride=QUICK_VALIDATE_STRIDE)
        if size["contacts"] <= VALIDATE_ALL_UP_TO:
            return Sink(validate_all_up_to=10**9)
        return Sink()

    def run_ours(self, scenario, sandbox, streams, rate, limited, note="", extra_config=None, variant=""):
        """One run of our tap; extra_config adds config keys, variant names the run apart from
        others of the same streams (it shows in the streams column)."""
        config = self.our_config(sandbox, rate, extra_config)
        catalog = self.our_catalog(sandbox, config)
        catalog_path = write_json(
            os.path.join(self.workdir, f"catalog-{scenario}-{len(self.runs)}.json"), select_catalog(catalog, streams)
        )
        cmd = [TAP, "--config", config, "--catalog", catalog_path]
        source = (extra_config or {}).get("lists_contacts_source", "auto")
        return self._run(scenario, "ours", sandbox, streams, cmd, rate if limited else None, note, variant, source)

    def run_published(self, scenario, sandbox, streams, note=""):
        catalog = self.published_catalog(sandbox)
        props = write_json(
            os.path.join(self.workdir, f"properties-{scenario}-{len(self.runs)}.json"), select_catalog(catalog, streams)
        )
        return self._run(
            scenario, "0.3.0", sandbox, streams, self.published_cmd(sandbox, "--properties", props), None, note
        )

    def _run(self, scenario, tap, sandbox, streams, cmd, rate, note, variant="", source="auto"):
        mix = MIX_LABELS.get(tuple(streams), "+".join(streams))
        if variant:
            mix = f"{mix} ({variant})"
        label = f"{scenario} {tap} {mix}"
        log(f"bench: {label}: {sandbox.size['contacts']:,} contacts ...")
        sandbox.reset_stats()
        sandbox_cpu_before = sandbox.cpu_seconds()
        sink = self.sink_for(sandbox.size)
        run = run_process(cmd, self.workdir, label, sink, self.timeout)
        sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu_before
        stats = sandbox.stats()
        validation = validate(sink)
        records = sink.records()
        exp = expected(sandbox.size)
        status = {str(k): v for k, v in (stats.get("status") or {}).items()}
        requests_ok = status.get("200", 0)
        total_records = sum(records.values())
        count_mismatch = []
        if exp is not None:
            for stream in streams:
                want = exp["records"].get(stream)
                got = records.get(stream, 0)
                if want is not None and got != want:
                    count_mismatch.append(f"{stream} {got:,} of {want:,}")
        # A page fetched successfully twice is a needless request; a retry after a 429 or 5xx is not.
        dup = {path: n for path, n in (stats.get("paths_ok") or {}).items() if n > 1}
        row = {
            "scenario": scenario,
            "tap": tap,
            "mix": mix,
            "streams": list(streams),
            "note": note,
            "contacts": sandbox.size["contacts"],
            "lists": sandbox.size["lists"],
            "segments": sandbox.size["segments"],
            "latency_ms": sandbox.latency_ms,
            "server_rate": sandbox.rate_limit,
            "tap_rate": rate,
            "records": total_records,
            "records_by_stream": records,
            "requests": stats.get("requests", 0),
            "requests_ok": requests_ok,
            "min_requests": minimum_requests(streams, exp),
            "dup_requests": sum(n - 1 for n in dup.values()),
            "dup_examples": sorted(dup)[:3],
            "status": status,
            "429": status.get("429", 0),
            "wall": run.wall,
            **floor(requests_ok, rate, longest_scan(streams, exp, source), sandbox.latency_ms),
            "cpu": run.cpu,
            "user": run.user,
            "sys": run.sys,
            "rss_mb": run.maxrss_mb,
            "sandbox_cpu": sandbox_cpu,
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
            "bytes": sink.bytes,
            "validation": validation,
            "count_mismatch": count_mismatch,
            "log": run.log_path,
            "cmd": cmd,
        }
        row["ok"] = (
            run.exit_code == 0
            and not run.timed_out
            and not validation["invalid"]
            and not validation["problems"]
            and not count_mismatch
            and total_records > 0
        )
        if run.exit_code != 0 or run.timed_out:
            log(
                f"bench: {label} exited {run.exit_code}{' (timed out)' if run.timed_out else ''}; "
                f"last lines of {run.log_path}:\n{tail(run.log_path)}"
            )
        if tap == "ours" and not row["ok"]:
            self.failed.append(label)
        self.runs.append(row)
        log("bench:   " + one_line(row))
        return row

    def rerun(self, row, sandbox, repetition):
        """The same command again, records only counted (for the least-CPU figure)."""
        label = f"{row['scenario']} {row['tap']} {row['mix']} #{repetition}"
        run = run_process(row["cmd"], self.workdir, label, Sink(validate_all_up_to=0, stride=10**12), self.timeout)
        records = sum(run.sink.records().values())
        if run.exit_code != 0 or records != row["records"]:
            log(f"bench: {label}: exit {run.exit_code}, {records:,} records (first run {row['records']:,})")
            return None
        log(f"bench:   {label}: CPU {run.cpu:.2f}s, wall {run.wall:.2f}s")
        return run

    def sequential_floor(self, row, sandbox):
        """Time benchmarks/sequential_client.py reading the contacts pages on `sandbox`, from
        spawn to exit, and add it to `row` (our run on the same sandbox) as "sequential_wall"."""
        time.sleep(1.1)  # the server's rate window forgets our run's requests first
        cmd = [VENV_PY, SEQUENTIAL_CLIENT, sandbox.base_url, API_KEY]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            log(f"bench: sequential client failed ({done.returncode}): {done.stderr.strip()}")
            return
        row["sequential_wall"] = wall
        log(f"bench:   sequential client: {done.stdout.strip()} pages, wall {wall:.2f}s")

    def startup_cpu(self, tap, sandbox):
        """CPU of a run that selects nothing (imports, arguments, config): min of 3 (1 with --quick)."""
        return min(run.cpu for run in self._empty_runs(tap, sandbox))

    def startup_wall(self, row, sandbox):
        """Add to `row` (our run on `sandbox`) the wall time, spawn to exit, of a run of ours that
        selects nothing ("startup_wall", least of 3: the interpreter, the imports, the config and
        the exit, which the floor does not count; it sends no request), and of a Python that only
        imports the libraries the tap runs on ("libraries_wall": no tap on them starts sooner).
        Both are timed the same way as the tap's runs (the rusage launcher)."""
        row["startup_wall"] = min(run.wall for run in self._empty_runs("ours", sandbox))
        imports = [VENV_PY, "-c", "import orjson, requests, singer"]
        row["libraries_wall"] = min(run.wall for run in self._repeated(imports, "libraries' imports"))
        walls = f"startup (selects nothing) {row['startup_wall']:.3f}s; libraries' imports {row['libraries_wall']:.3f}s"
        log("bench:   " + walls)

    def _empty_runs(self, tap, sandbox):
        """Runs of `tap` that select nothing: 3 (1 with --quick)."""
        if tap == "ours":
            config = self.our_config(sandbox, UNLIMITED_RATE)
            catalog = select_catalog(self.our_catalog(sandbox, config), ())
            cmd = [
                TAP,
                "--config",
                config,
                "--catalog",
                write_json(os.path.join(self.workdir, "catalog-none.json"), catalog),
            ]
        else:
            catalog = select_catalog(self.published_catalog(sandbox), ())
            properties = write_json(os.path.join(self.workdir, "properties-none.json"), catalog)
            cmd = self.published_cmd(sandbox, "--properties", properties)
        return self._repeated(cmd, f"startup {tap}")

    def _repeated(self, cmd, label):
        """`cmd` run 3 times (1 with --quick), each under the rusage launcher, its output counted."""
        return [run_process(cmd, self.workdir, label, Sink(), 120) for _ in range(1 if self.mode == "quick" else 3)]


def floor(requests, rate, longest, latency_ms):
    """The run's lower bound, floor = max(requests / rate limit, longest scan's pages x round trip),
    and which term binds: a scan's pages come one after another (each cursor comes from the page
    before), one round trip each (the sandbox's latency), while the rate limit caps all requests.
    None when neither term applies (no limit, no latency)."""
    terms = []
    if rate:
        terms.append((requests / rate, "rate"))
    if longest is not None and latency_ms:
        pages, scan = longest
        terms.append((pages * latency_ms / 1000.0, f"{scan} pages"))
    if not terms:
        return {"floor": None, "binds": None}
    value, binds = max(terms)
    return {"floor": value, "binds": binds}


def one_line(row):
    floor = f"{row['floor']:.1f}s ({row['binds']})" if row["floor"] else "n/a"
    return (
        f"{row['records']:,} records, {row['requests']:,} requests, wall {row['wall']:.2f}s, floor {floor}, "
        f"CPU {row['cpu']:.2f}s, RSS {row['rss_mb']:.0f} MB, 429s {row['429']}, "
        f"valid {valid_text(row)}"
    )


def valid_text(row):
    v = row["validation"]
    if row["exit_code"] != 0 or row["timed_out"]:
        return "RUN FAILED"
    text = f"{v['checked'] - v['invalid']:,}/{v['checked']:,}"
    flags = []
    if v["outside_schema"]:
        flags.append(f"{v['outside_schema']:,} w/ fields outside schema")
    if v["problems"]:
        flags.append("protocol errors")
    if row["count_mismatch"]:
        flags.append("count mismatch")
    return text + (" (" + "; ".join(flags) + ")" if flags else "")
