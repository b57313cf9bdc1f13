#!/usr/bin/env python3
"""tap-autopilot benchmark (`make bench`).

Runs the installed CLI (.venv/bin/tap-autopilot) as a subprocess against a
fresh sandbox subprocess per scenario and prints, per run: contacts, requests
made (sandbox stats), wall time, the floor (requests / rate limit), wall/floor,
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
  profile  scenario 1 under a per-thread cProfile (thread CPU time): top 15

Usage:
  .venv/bin/python benchmarks/run.py             # everything; writes benchmarks/RESULTS.md
  .venv/bin/python benchmarks/run.py --quick     # small sizes, a smoke run (< 60 s)
  .venv/bin/python benchmarks/run.py --only 3,5  # some scenarios (by number or name)

Figures are printed, never asserted. The exit status is 1 only when a run of
our tap failed or its output did not validate.
"""
import argparse
import datetime
import json
import math
import os
import platform
import pstats
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
TAP = os.path.join(ROOT, ".venv", "bin", "tap-autopilot")
PUBLISHED_PY = os.path.join(ROOT, ".tools", "tap-autopilot-0.3.0", "bin", "python")
PUBLISHED_WRAPPER = os.path.join(BENCH_DIR, "published_tap.py")
RESULTS_MD = os.path.join(BENCH_DIR, "RESULTS.md")

API_KEY = "sandbox-key"
START_DATE = "2000-01-01T00:00:00Z"   # before every generated updated_at: all contacts
UNLIMITED_RATE = 1000                 # the tap's max_requests_per_second when the sandbox has no limit
PAGE = 100

ALL = ("contacts", "lists", "lists_contacts", "smart_segments", "smart_segments_contacts")
PUBLISHED_ALL = ("contacts", "lists", "smart_segments", "smart_segments_contacts")
MIX_LABELS = {
    ALL: "all 5",
    PUBLISHED_ALL: "0.3.0's 4",
    ("contacts",): "contacts",
    ("smart_segments", "smart_segments_contacts"): "segments+members",
}

# Scenario sizes: full run, and --quick.
SIZES = {
    "full": {
        "s1": dict(contacts=10_000, lists=3, segments=2),
        "s2": dict(contacts=100_000, lists=3, segments=2),
        "s3": dict(contacts=5_000, lists=10, segments=5),
        "s4": dict(contacts=5_000, lists=10, segments=5),
        "s5": dict(contacts=10_000, lists=3, segments=2),
    },
    "quick": {
        "s1": dict(contacts=1_000, lists=3, segments=2),
        "s2": dict(contacts=3_000, lists=3, segments=2),
        "s3": dict(contacts=500, lists=4, segments=2),
        "s4": dict(contacts=300, lists=3, segments=2),
        "s5": dict(contacts=1_000, lists=3, segments=2),
    },
}
SEED = 7

# Validation: every RECORD up to this many per stream, then one in STRIDE.
VALIDATE_ALL_UP_TO = 10_000
VALIDATE_STRIDE = 50
QUICK_VALIDATE_ALL_UP_TO = 500
QUICK_VALIDATE_STRIDE = 10


def log(message):
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# machine
# ----------------------------------------------------------------------------

def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    tap_python = _output([VENV_PY, "-c", "import sys; print(sys.version.split()[0])"])
    published_python = _output([PUBLISHED_PY, "-c", "import sys; print(sys.version.split()[0])"]) \
        if os.path.exists(PUBLISHED_PY) else "not installed"
    commit = _output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                     "--", "tap_autopilot", "setup.py"])
    return {
        "cpu": model,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "memory": f"{mem:,} MB" if mem else "unknown",
        "os": platform.platform(),
        "python (tap)": tap_python,
        "python (0.3.0)": published_python,
        "tap version": _output([TAP, "--version"]),
        "commit": commit + (" + uncommitted changes in tap_autopilot/ or setup.py" if dirty else ""),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------
# sandbox subprocess
# ----------------------------------------------------------------------------

class Sandbox:
    """`python -m tap_autopilot.sandbox` in a subprocess; base URL from its first stdout line."""

    def __init__(self, workdir, contacts, lists, segments, seed=SEED, latency_ms=None, rate_limit=None):
        self.workdir = workdir
        self.size = dict(contacts=contacts, lists=lists, segments=segments, seed=seed)
        self.latency_ms = latency_ms
        self.rate_limit = rate_limit
        self.proc = None
        self.base_url = None
        self.root = None

    def __enter__(self):
        cmd = [VENV_PY, "-m", "tap_autopilot.sandbox", "--port", "0",
               "--contacts", str(self.size["contacts"]), "--lists", str(self.size["lists"]),
               "--segments", str(self.size["segments"]), "--seed", str(self.size["seed"])]
        if self.latency_ms:
            cmd += ["--latency-ms", str(self.latency_ms)]
        if self.rate_limit:
            cmd += ["--rate-limit", str(self.rate_limit)]
        self.log_path = os.path.join(self.workdir, "sandbox.log")
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=ROOT)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http"):
            self.__exit__()
            raise RuntimeError(f"the sandbox did not print its base URL (got {line!r}); see {self.log_path}: "
                               + _tail(self.log_path))
        self.base_url = line
        self.root = line[:-len("/v1")] if line.endswith("/v1") else line
        return self

    def __exit__(self, *exc):
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return
            time.sleep(0.05)
        proc.kill()
        proc.wait()

    def _admin(self, method, name, body=None):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(f"{self.root}/_admin/{name}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self):
        return self._admin("GET", "stats")

    def reset_stats(self):
        self._admin("POST", "reset_stats")

    def cpu_seconds(self):
        """user+sys CPU of the sandbox process so far (from /proc)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError, AttributeError):
            return float("nan")


def _tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


# ----------------------------------------------------------------------------
# expected counts (the sandbox's dataset is deterministic; computed here, in-process)
# ----------------------------------------------------------------------------

_EXPECTED = {}


def expected(size):
    """Records per stream and the minimum requests per stream for a sandbox size,
    or None when the dataset module cannot tell (it is another engineer's code)."""
    key = tuple(sorted(size.items()))
    if key in _EXPECTED:
        return _EXPECTED[key]
    try:
        from tap_autopilot.sandbox import Dataset
        ds = Dataset(contacts=size["contacts"], lists=size["lists"], segments=size["segments"],
                     seed=size["seed"])
        lists = ds.lists()
        segments = ds.segments()
        list_sizes = [len(ds.list_members(item["list_id"])) for item in lists]
        segment_sizes = [len(ds.segment_members(item["segment_id"])) for item in segments]
        result = {
            "records": {
                "contacts": len(ds), "lists": len(lists), "lists_contacts": sum(list_sizes),
                "smart_segments": len(segments), "smart_segments_contacts": sum(segment_sizes),
            },
            "pages": {
                "contacts": max(1, math.ceil(len(ds) / PAGE)),
                "lists_contacts": sum(max(1, math.ceil(n / PAGE)) for n in list_sizes),
                "smart_segments_contacts": sum(max(1, math.ceil(n / PAGE)) for n in segment_sizes),
            },
        }
    except Exception as error:  # pylint: disable=broad-except
        log(f"bench: cannot compute the expected counts from the sandbox dataset ({error!r})")
        result = None
    _EXPECTED[key] = result
    return result


def minimum_requests(streams, exp):
    if exp is None:
        return None
    pages = exp["pages"]
    total = 0
    if "contacts" in streams:
        total += pages["contacts"]
    if "lists" in streams or "lists_contacts" in streams:
        total += 1
    if "lists_contacts" in streams:
        total += pages["lists_contacts"]
    if "smart_segments" in streams or "smart_segments_contacts" in streams:
        total += 1
    if "smart_segments_contacts" in streams:
        total += pages["smart_segments_contacts"]
    return total


# ----------------------------------------------------------------------------
# the counting sink and the validation of its sample
# ----------------------------------------------------------------------------

_RECORD_HEAD = re.compile(rb'\{\s*"type"\s*:\s*"RECORD"\s*,\s*"stream"\s*:\s*"((?:[^"\\]|\\.)*)"')


class Sink:
    """Reads a tap's stdout: counts RECORDs per stream without storing them,
    parses every other message, keeps a sample of RECORD lines for validation."""

    def __init__(self, validate_all_up_to=VALIDATE_ALL_UP_TO, stride=VALIDATE_STRIDE):
        self.full = validate_all_up_to
        self.stride = stride
        self.counts = {}              # stream (bytes) -> RECORD lines
        self.samples = {}             # stream (bytes) -> [(schema message, line)]
        self.schemas = {}             # stream (bytes) -> the last SCHEMA message
        self.messages = Counter()     # type -> count (non-RECORD)
        self.problems = []            # Singer protocol problems
        self.bytes = 0
        self.last_state = None

    def feed(self, stream):
        match = _RECORD_HEAD.match
        counts, samples, schemas = self.counts, self.samples, self.schemas
        full, stride = self.full, self.stride
        total_bytes = 0
        for line in stream:
            total_bytes += len(line)
            found = match(line)
            if found is not None:
                name = found.group(1)
                n = counts.get(name, 0) + 1
                counts[name] = n
                schema = schemas.get(name)
                if schema is None:
                    if len(self.problems) < 20:
                        self.problems.append(f"RECORD of {name.decode()} before its SCHEMA")
                    continue
                if n <= full or n % stride == 0:
                    samples.setdefault(name, []).append((schema, line))
                continue
            self._other(line)
        self.bytes += total_bytes

    def _other(self, line):
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            self._problem(f"not JSON: {line[:80]!r}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        self.messages[kind] += 1
        if kind == "SCHEMA":
            if not isinstance(message.get("schema"), dict) or not isinstance(message.get("stream"), str):
                self._problem("SCHEMA without a stream or a schema object")
                return
            self.schemas[message["stream"].encode()] = message
        elif kind == "STATE":
            if "value" not in message:
                self._problem("STATE without a value")
            self.last_state = message.get("value")
        elif kind == "RECORD":   # a RECORD whose head our regex did not take (key order, spacing)
            stream = message.get("stream")
            name = stream.encode() if isinstance(stream, str) else b"?"
            self.counts[name] = self.counts.get(name, 0) + 1
            schema = self.schemas.get(name)
            if schema is None:
                self._problem(f"RECORD of {stream} before its SCHEMA")
            else:
                self.samples.setdefault(name, []).append((schema, line))
        elif kind not in ("ACTIVATE_VERSION", "BATCH"):
            self._problem(f"unknown message type {kind!r}")

    def _problem(self, text):
        if len(self.problems) < 20:
            self.problems.append(text)

    def records(self):
        return {name.decode(): n for name, n in self.counts.items()}


def _date_time_checker():
    import jsonschema
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value):  # RFC 3339: a date, a 'T', a time and an offset
        if not isinstance(value, str):
            return True
        if len(value) < 20 or value[10] not in "Tt":
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        parsed = datetime.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return True

    return checker


def validate(sink):
    """Validate the sampled RECORDs against the SCHEMA each one was sent under."""
    import jsonschema
    checker = _date_time_checker()
    validators = {}
    result = {"checked": 0, "invalid": 0, "outside_schema": 0, "missing_keys": 0, "errors": [],
              "outside_fields": Counter(), "problems": list(sink.problems), "seconds": 0.0}
    started = time.perf_counter()
    for name, samples in sink.samples.items():
        stream = name.decode()
        for schema_message, line in samples:
            validator = validators.get(id(schema_message))
            if validator is None:
                validator = validators[id(schema_message)] = jsonschema.Draft4Validator(
                    schema_message["schema"], format_checker=checker)
            result["checked"] += 1
            try:
                message = json.loads(line)
            except ValueError:
                result["invalid"] += 1
                _note(result, f"{stream}: a RECORD line is not JSON")
                continue
            record = message.get("record")
            if not isinstance(record, dict):
                result["invalid"] += 1
                _note(result, f"{stream}: RECORD without a record object")
                continue
            bad = False
            for error in validator.iter_errors(record):
                bad = True
                path = "/".join(str(p) for p in error.path)
                _note(result, f"{stream}: {path or '(record)'}: {error.message[:160]}")
                break
            properties = schema_message["schema"].get("properties") or {}
            outside = [key for key in record if key not in properties]
            if outside:
                result["outside_schema"] += 1
                result["outside_fields"].update(outside)
            keys = schema_message.get("key_properties") or []
            if any(record.get(key) in (None, "") for key in keys):
                result["missing_keys"] += 1
                bad = True
                _note(result, f"{stream}: a key property of {keys} is missing or empty")
            if bad:
                result["invalid"] += 1
    result["seconds"] = time.perf_counter() - started
    return result


def _note(result, text):
    if len(result["errors"]) < 5 and text not in result["errors"]:
        result["errors"].append(text)


# ----------------------------------------------------------------------------
# running a tap
# ----------------------------------------------------------------------------

class TapRun:
    """One tap process: its rusage, wall time, exit status and sink."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


# The tap runs under this small launcher, which forks it, waits for it with
# os.wait4 and writes the child's own rusage and wall time to a file. Why not
# wait4 the tap from here: Linux carries the RSS high-water mark of the process
# that forks across exec (into the child's ru_maxrss), so a tap started straight
# from this process would report at least this process's RSS (which grows with
# the validation samples). The launcher is a fresh interpreter of ~10 MB.
LAUNCHER = r"""
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
while True:
    try:
        _, status, usage = os.wait4(child.pid, 0)
        break
    except InterruptedError:
        continue
wall = time.perf_counter() - started
child.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as handle:
    json.dump({"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
               "maxrss_kb": usage.ru_maxrss, "exit_code": code}, handle)
sys.exit(code if 0 <= code < 256 else 128 - code)
"""


def run_process(cmd, workdir, label, sink, timeout, env=None):
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    log_path = os.path.join(workdir, slug + ".stderr.log")
    usage_path = os.path.join(workdir, slug + ".rusage.json")
    if os.path.exists(usage_path):
        os.unlink(usage_path)
    killed = threading.Event()
    started = time.perf_counter()
    with open(log_path, "wb") as err:
        proc = subprocess.Popen([VENV_PY, "-c", LAUNCHER, usage_path] + list(cmd), stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.DEVNULL, cwd=workdir, env=env,
                                bufsize=1 << 16, start_new_session=True)

    def kill():
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the launcher and the tap
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        sink.feed(proc.stdout)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    try:
        with open(usage_path, encoding="utf-8") as handle:
            child = json.load(handle)
    except (OSError, ValueError):   # killed: the launcher's totals (its own share is tiny)
        child = {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
                 "exit_code": proc.returncode}
    return TapRun(cmd=cmd, wall=child["wall"], user=child["user"], sys=child["sys"],
                  cpu=child["user"] + child["sys"], maxrss_mb=child["maxrss_kb"] / 1024.0,
                  exit_code=child["exit_code"], timed_out=killed.is_set(), log_path=log_path, sink=sink)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle)
    return path


def select_catalog(catalog, streams):
    """A copy of a discovered catalog with exactly `streams` selected (stream-level
    metadata, which both taps read; columns keep their defaults)."""
    out = json.loads(json.dumps(catalog))
    for entry in out["streams"]:
        chosen = entry["tap_stream_id"] in streams
        for item in entry.get("metadata") or []:
            if not item.get("breadcrumb"):
                item["metadata"]["selected"] = chosen
                break
        else:
            entry.setdefault("metadata", []).append({"breadcrumb": [], "metadata": {"selected": chosen}})
    return out


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.mode = "quick" if args.quick else "full"
        self.runs = []          # result rows (dicts), in order
        self.sections = []      # extra Markdown sections (title, lines)
        self.failed = []        # our tap's failures
        self.timeout = args.timeout
        self._catalogs = {}

    # --- configs and catalogs ---------------------------------------------

    def our_config(self, sandbox, rate):
        config = {"api_key": API_KEY, "start_date": START_DATE, "base_url": sandbox.base_url,
                  "max_requests_per_second": rate, "request_timeout": 60}
        if self.args.workers:
            config["max_concurrent_requests"] = self.args.workers
        name = f"config-{os.getpid()}-{len(self._catalogs)}-{rate}.json"
        return write_json(os.path.join(self.workdir, name), config)

    def our_catalog(self, sandbox, config_path):
        key = ("ours", sandbox.base_url)
        if key not in self._catalogs:
            result = subprocess.run([TAP, "--config", config_path, "--discover"], capture_output=True,
                                    text=True, cwd=self.workdir, timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"tap-autopilot --discover failed: {result.stderr[-2000:]}")
            self._catalogs[key] = json.loads(result.stdout)
        return self._catalogs[key]

    def published_config(self):
        return write_json(os.path.join(self.workdir, "config-0.3.0.json"),
                          {"api_key": API_KEY, "start_date": START_DATE})

    def published_catalog(self, sandbox):
        key = ("0.3.0",)
        if key not in self._catalogs:
            result = subprocess.run([PUBLISHED_PY, PUBLISHED_WRAPPER, "--base-url", sandbox.base_url,
                                     "--config", self.published_config(), "--discover"],
                                    capture_output=True, text=True, cwd=self.workdir, timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"tap-autopilot 0.3.0 --discover failed: {result.stderr[-2000:]}")
            self._catalogs[key] = json.loads(result.stdout)
        return self._catalogs[key]

    # --- runs ---------------------------------------------------------------

    def sink_for(self, size):
        """Small scenarios: validate every record. --quick: a sparser sample (jsonschema
        costs ~0.6 ms a contact; the smoke run must stay under a minute)."""
        if self.mode == "quick":
            return Sink(validate_all_up_to=QUICK_VALIDATE_ALL_UP_TO, stride=QUICK_VALIDATE_STRIDE)
        if size["contacts"] <= VALIDATE_ALL_UP_TO:
            return Sink(validate_all_up_to=10 ** 9)
        return Sink()

    def run_ours(self, scenario, sandbox, streams, rate, limited, note=""):
        config = self.our_config(sandbox, rate)
        catalog = self.our_catalog(sandbox, config)
        catalog_path = write_json(os.path.join(self.workdir, f"catalog-{scenario}-{len(self.runs)}.json"),
                                  select_catalog(catalog, streams))
        cmd = [TAP, "--config", config, "--catalog", catalog_path]
        return self._run(scenario, "ours", sandbox, streams, cmd, rate if limited else None, note)

    def run_published(self, scenario, sandbox, streams, note=""):
        catalog = self.published_catalog(sandbox)
        props = write_json(os.path.join(self.workdir, f"properties-{scenario}-{len(self.runs)}.json"),
                           select_catalog(catalog, streams))
        cmd = [PUBLISHED_PY, PUBLISHED_WRAPPER, "--base-url", sandbox.base_url,
               "--config", self.published_config(), "--properties", props]
        return self._run(scenario, "0.3.0", sandbox, streams, cmd, None, note)

    def _run(self, scenario, tap, sandbox, streams, cmd, rate, note):
        mix = MIX_LABELS.get(tuple(streams), "+".join(streams))
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
            "scenario": scenario, "tap": tap, "mix": mix, "streams": list(streams), "note": note,
            "contacts": sandbox.size["contacts"], "lists": sandbox.size["lists"],
            "segments": sandbox.size["segments"], "latency_ms": sandbox.latency_ms,
            "server_rate": sandbox.rate_limit, "tap_rate": rate,
            "records": total_records, "records_by_stream": records,
            "requests": stats.get("requests", 0), "requests_ok": requests_ok,
            "min_requests": minimum_requests(streams, exp),
            "dup_requests": sum(n - 1 for n in dup.values()), "dup_examples": sorted(dup)[:3],
            "status": status, "429": status.get("429", 0),
            "wall": run.wall, "floor": requests_ok / rate if rate else None,
            "cpu": run.cpu, "user": run.user, "sys": run.sys, "rss_mb": run.maxrss_mb,
            "sandbox_cpu": sandbox_cpu, "exit_code": run.exit_code, "timed_out": run.timed_out,
            "bytes": sink.bytes, "validation": validation, "count_mismatch": count_mismatch,
            "log": run.log_path, "cmd": cmd,
        }
        row["ok"] = (run.exit_code == 0 and not run.timed_out and not validation["invalid"]
                     and not validation["problems"] and not count_mismatch and total_records > 0)
        if run.exit_code != 0 or run.timed_out:
            log(f"bench: {label} exited {run.exit_code}{' (timed out)' if run.timed_out else ''}; "
                f"last lines of {run.log_path}:\n{_tail(run.log_path)}")
        if tap == "ours" and not row["ok"]:
            self.failed.append(label)
        self.runs.append(row)
        log("bench:   " + _one_line(row))
        return row

    def rerun(self, row, sandbox, repetition):
        """The same command again, records only counted (for the least-CPU figure)."""
        label = f"{row['scenario']} {row['tap']} {row['mix']} #{repetition}"
        run = run_process(row["cmd"], self.workdir, label, Sink(validate_all_up_to=0, stride=10 ** 12),
                          self.timeout)
        records = sum(run.sink.records().values())
        if run.exit_code != 0 or records != row["records"]:
            log(f"bench: {label}: exit {run.exit_code}, {records:,} records (first run {row['records']:,})")
            return None
        log(f"bench:   {label}: CPU {run.cpu:.2f}s, wall {run.wall:.2f}s")
        return run

    def startup_cpu(self, tap, sandbox):
        """CPU of a run that selects nothing (imports, arguments, config): min of 3 (1 with --quick)."""
        best = None
        for _ in range(1 if self.mode == "quick" else 3):
            if tap == "ours":
                config = self.our_config(sandbox, UNLIMITED_RATE)
                catalog = select_catalog(self.our_catalog(sandbox, config), ())
                cmd = [TAP, "--config", config, "--catalog",
                       write_json(os.path.join(self.workdir, "catalog-none.json"), catalog)]
            else:
                catalog = select_catalog(self.published_catalog(sandbox), ())
                cmd = [PUBLISHED_PY, PUBLISHED_WRAPPER, "--base-url", sandbox.base_url,
                       "--config", self.published_config(), "--properties",
                       write_json(os.path.join(self.workdir, "properties-none.json"), catalog)]
            run = run_process(cmd, self.workdir, f"startup {tap}", Sink(), 120)
            best = run.cpu if best is None else min(best, run.cpu)
        return best


def _one_line(row):
    floor = f"{row['floor']:.1f}s" if row["floor"] else "n/a"
    return (f"{row['records']:,} records, {row['requests']:,} requests, wall {row['wall']:.2f}s, floor {floor}, "
            f"CPU {row['cpu']:.2f}s, RSS {row['rss_mb']:.0f} MB, 429s {row['429']}, "
            f"valid {_valid_text(row)}")


def _valid_text(row):
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


# ----------------------------------------------------------------------------
# scenarios
# ----------------------------------------------------------------------------

def scenario_1(bench):
    size = SIZES[bench.mode]["s1"]
    with Sandbox(bench.workdir, **size) as sb:
        bench.run_ours("1", sb, ALL, UNLIMITED_RATE, limited=False)


def scenario_2(bench):
    size = SIZES[bench.mode]["s2"]
    with Sandbox(bench.workdir, **size) as sb:
        bench.run_ours("2", sb, ("contacts",), UNLIMITED_RATE, limited=False)
        bench.run_ours("2", sb, ALL, UNLIMITED_RATE, limited=False)


def scenario_3(bench):
    size = SIZES[bench.mode]["s3"]
    with Sandbox(bench.workdir, latency_ms=100, rate_limit=20, **size) as sb:
        bench.run_ours("3", sb, ALL, 20, limited=True)


def scenario_4(bench):
    size = SIZES[bench.mode]["s4"]
    with Sandbox(bench.workdir, latency_ms=100, rate_limit=5, **size) as sb:
        bench.run_ours("4", sb, ALL, 5, limited=True)


S5_MIXES = (("contacts",), ("smart_segments", "smart_segments_contacts"), PUBLISHED_ALL)


def scenario_5(bench):
    if not os.path.exists(PUBLISHED_PY):
        bench.sections.append(("Scenario 5: vs the published tap 0.3.0",
                               ["Skipped: .tools/tap-autopilot-0.3.0 is missing (run `make tools`)."]))
        return
    size = SIZES[bench.mode]["s5"]
    repeat = 1 if bench.mode == "quick" else max(1, bench.args.repeat)
    pairs = []
    with Sandbox(bench.workdir, **size) as sb:
        startup = {"0.3.0": bench.startup_cpu("0.3.0", sb), "ours": bench.startup_cpu("ours", sb)}
        for mix in S5_MIXES:
            theirs = bench.run_published("5", sb, mix, note="0.3.0 paces itself at 20 r/s")
            ours = bench.run_ours("5", sb, mix, UNLIMITED_RATE, limited=False)
            cpu = {"0.3.0": [theirs["cpu"]], "ours": [ours["cpu"]]}
            for repetition in range(2, repeat + 1):   # interleaved, so load changes hit both
                for key, row in (("0.3.0", theirs), ("ours", ours)):
                    if row["ok"] or key == "0.3.0":
                        run = bench.rerun(row, sb, repetition)
                        if run is not None:
                            cpu[key].append(run.cpu)
            pairs.append((mix, theirs, ours, cpu))
    lines = [
        f"Same sandbox (one process, {size['contacts']:,} contacts, {size['lists']} lists, "
        f"{size['segments']} segments, no latency, no limit), same streams, each tap run {repeat} time(s), "
        "interleaved; the figures are the least CPU (user+sys of the tap process) of the runs, with the "
        "range, per record. The first run of each is the one in the table above, and the one validated. "
        f"Startup CPU (a run that selects nothing; least of a few): 0.3.0 {startup['0.3.0']:.3f} s, "
        f"ours {startup['ours']:.3f} s; the 'excl. startup' columns subtract it.",
        "",
        "| streams | records | 0.3.0 µs/rec | ours µs/rec | ours/0.3.0 | 0.3.0 excl. startup | "
        "ours excl. startup | ours/0.3.0 excl. startup | 0.3.0 RSS MB | ours RSS MB | 0.3.0 valid | ours valid |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    summary = []
    for mix, theirs, ours, cpu in pairs:
        label = MIX_LABELS.get(tuple(mix), "+".join(mix))
        if not theirs["records"] or not ours["records"]:
            lines.append(f"| {label} | (a run produced no records) | | | | | | | | | | |")
            continue

        def per_record(values, records, minus=0.0):
            low, high = (min(values) - minus) / records * 1e6, (max(values) - minus) / records * 1e6
            if low <= 0:   # the startup estimate exceeds the run: too few records to tell
                return None, "n/a"
            return low, (f"{low:.1f}" if len(values) == 1 else f"{low:.1f} ({low:.0f}-{high:.0f})")

        t_us, t_text = per_record(cpu["0.3.0"], theirs["records"])
        o_us, o_text = per_record(cpu["ours"], ours["records"])
        t_ex, t_ex_text = per_record(cpu["0.3.0"], theirs["records"], startup["0.3.0"])
        o_ex, o_ex_text = per_record(cpu["ours"], ours["records"], startup["ours"])
        records = f"{theirs['records']:,}" if theirs["records"] == ours["records"] else \
            f"{theirs['records']:,} / {ours['records']:,}"
        ratio_ex = o_ex / t_ex if t_ex and o_ex is not None else None
        lines.append(f"| {label} | {records} | {t_text} | {o_text} | {o_us / t_us:.2f}x | {t_ex_text} | "
                     f"{o_ex_text} | " + (f"{ratio_ex:.2f}x" if ratio_ex is not None else "n/a") +
                     f" | {theirs['rss_mb']:.0f} | {ours['rss_mb']:.0f} | {_valid_text(theirs)} | "
                     f"{_valid_text(ours)} |")
        summary.append({"mix": label, "theirs_us": t_us, "ours_us": o_us, "ratio": o_us / t_us,
                        "theirs_ex": t_ex, "ours_ex": o_ex, "ratio_ex": ratio_ex})
    outside = Counter()
    for _, theirs, _, _ in pairs:
        outside.update(theirs["validation"]["outside_fields"])
    if outside:
        lines += ["", "0.3.0 writes raw API fields its own schema does not declare, e.g. "
                  + ", ".join(f"`{k}`" for k, _ in outside.most_common(8)) + "."]
    bench.s5 = {"startup": startup, "summary": summary}
    bench.sections.append(("Scenario 5: CPU per record, ours vs the published tap 0.3.0", lines))


PROFILE_BOOTSTRAP = r"""
import cProfile, os, sys, threading, time
_profiles = []
_lock = threading.Lock()
_original_run = threading.Thread.run
def _run(self):
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()
threading.Thread.run = _run
_main = cProfile.Profile(time.thread_time)
_profiles.append(_main)
sys.argv = ["tap-autopilot"] + sys.argv[1:]
code = 0
_main.enable()
try:
    from tap_autopilot import main
    main()
except SystemExit as exit_:
    code = exit_.code
finally:
    _main.disable()
    import pstats
    with _lock:
        stats = pstats.Stats(*_profiles)
    stats.dump_stats(os.environ["TAP_PROFILE_OUT"])
sys.exit(code)
"""


def scenario_profile(bench):
    size = SIZES[bench.mode]["s1"]
    out = os.path.join(bench.workdir, "tap.prof")
    with Sandbox(bench.workdir, **size) as sb:
        config = bench.our_config(sb, UNLIMITED_RATE)
        catalog = write_json(os.path.join(bench.workdir, "catalog-profile.json"),
                             select_catalog(bench.our_catalog(sb, config), ALL))
        log(f"bench: profile: scenario 1 ({size['contacts']:,} contacts, all streams) under cProfile ...")
        sb.reset_stats()
        env = dict(os.environ, TAP_PROFILE_OUT=out)
        run = run_process([VENV_PY, "-c", PROFILE_BOOTSTRAP, "--config", config, "--catalog", catalog],
                          bench.workdir, "profile", Sink(validate_all_up_to=0, stride=10 ** 9),
                          bench.timeout, env=env)
    if run.exit_code != 0 or not os.path.exists(out):
        bench.sections.append(("Profile of scenario 1", [f"The profiled run failed (exit {run.exit_code}); "
                                                          f"see {run.log_path}."]))
        return
    records = sum(run.sink.records().values())
    stats = pstats.Stats(out)
    total = stats.total_tt
    lines = [
        f"Scenario 1 data ({size['contacts']:,} contacts, all streams, {records:,} records), the tap run under "
        "cProfile in every thread (main, pool workers, progress) with `time.thread_time` as the clock, so "
        f"the times are CPU, not waiting. Profiled CPU {total:.2f} s in the profiler's clock "
        f"(process CPU {run.cpu:.2f} s with the profiler's own overhead; the unprofiled run is in the table "
        "above). Recreate with `benchmarks/run.py --only profile --keep` (the .prof file stays in the work "
        "directory).",
        "",
    ]
    for title, key in (("Top 15 by own time (tottime)", 2), ("Top 15 by cumulative time", 3)):
        lines += [f"**{title}**", "", "| own s | own % | cumulative s | calls | function |",
                  "|--:|--:|--:|--:|---|"]
        rows = sorted(stats.stats.items(), key=lambda item: item[1][key], reverse=True)
        shown = 0
        for (filename, line, name), (cc, nc, tt, ct, _callers) in rows:
            if key == 3 and _is_wrapper(filename, name):
                continue
            calls = f"{nc:,}" if nc == cc else f"{nc:,}/{cc:,}"
            lines.append(f"| {tt:.3f} | {100 * tt / total if total else 0:.1f} | {ct:.3f} | {calls} | "
                         f"`{_function_label(filename, line, name)}` |")
            shown += 1
            if shown == 15:
                break
        lines.append("")
    bench.sections.append(("Profile of scenario 1 (where the tap's CPU goes)", lines))


def _is_wrapper(filename, name):
    """Frames that only wrap everything: thread bootstrap, the profiling script,
    the import machinery (import CPU shows as the `<module>` rows)."""
    if filename == "<string>" and name in ("<module>", "_run"):
        return True
    if filename.startswith("<frozen importlib"):
        return True
    if filename == "~" and name in ("<built-in method builtins.exec>", "<built-in method builtins.__import__>"):
        return True
    return "threading.py" in filename and name in ("_bootstrap", "_bootstrap_inner", "run")


def _function_label(filename, line, name):
    if filename == "~":
        return name
    for marker in ("site-packages/", "lib/python3.11/", ROOT + "/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line} {name}"


SCENARIOS = [
    ("1", "zero-latency-10k", scenario_1),
    ("2", "zero-latency-100k", scenario_2),
    ("3", "latency-20rps", scenario_3),
    ("4", "latency-5rps", scenario_4),
    ("5", "vs-0.3.0", scenario_5),
    ("profile", "profile", scenario_profile),
]


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------

HEADERS = ["scen.", "tap", "streams", "contacts", "records", "requests", "wall s", "floor s",
           "wall/floor", "rec/s", "CPU s/1k rec", "peak RSS MB", "429s", "valid (sample)"]
ALIGN_LEFT = {0, 1, 2, 13}


def table_rows(runs):
    rows = []
    for r in runs:
        floor = f"{r['floor']:.2f}" if r["floor"] else "n/a"
        ratio = f"{r['wall'] / r['floor']:.3f}" if r["floor"] else "n/a"
        requests = f"{r['requests']:,}"
        if r["min_requests"] is not None and r["requests"] != r["min_requests"]:
            requests += f" (min {r['min_requests']:,})"
        rows.append([
            r["scenario"], r["tap"], r["mix"], f"{r['contacts']:,}", f"{r['records']:,}", requests,
            f"{r['wall']:.2f}", floor, ratio,
            f"{r['records'] / r['wall']:,.0f}" if r["wall"] else "-",
            f"{r['cpu'] / r['records'] * 1000:.3f}" if r["records"] else "-",
            f"{r['rss_mb']:.1f}", str(r["429"]), _valid_text(r),
        ])
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
    out = ["| " + " | ".join(HEADERS) + " |",
           "|" + "|".join("---" if i in ALIGN_LEFT else "--:" for i in range(len(HEADERS))) + "|"]
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
    ]


def targets(bench):
    """Issue 4's targets, checked against the figures (reported, never asserted)."""
    lines = []

    def mark(ok):
        return "met" if ok else "NOT met"

    ours = [r for r in bench.runs if r["tap"] == "ours"]
    for r in ours:
        if r["scenario"] == "3" and r["floor"]:
            ratio = r["wall"] / r["floor"]
            lines.append(f"- Scenario 3 (100 ms, 20 r/s): wall/floor {ratio:.3f} (target <= 1.15: "
                         f"{mark(ratio <= 1.15)}); 429s {r['429']} (target 0: {mark(r['429'] == 0)}).")
        if r["scenario"] == "4" and r["floor"]:
            ratio = r["wall"] / r["floor"]
            lines.append(f"- Scenario 4 (100 ms, 5 r/s): wall/floor {ratio:.3f}; 429s {r['429']} "
                         f"(target 0: {mark(r['429'] == 0)}).")
    big = [r for r in ours if r["scenario"] == "2"]
    for r in big:
        lines.append(f"- Peak RSS at {r['contacts']:,} contacts ({r['mix']}): {r['rss_mb']:.1f} MB "
                     f"(target < 80 MB: {mark(r['rss_mb'] < 80)}).")
    small = [r for r in ours if r["scenario"] == "1"]
    if small and big:
        lines.append(f"- RSS growth {small[0]['contacts']:,} -> {big[-1]['contacts']:,} contacts (all streams): "
                     f"{small[0]['rss_mb']:.1f} -> {big[-1]['rss_mb']:.1f} MB.")
    s5 = getattr(bench, "s5", None)
    if s5:
        for item in s5["summary"]:
            lines.append(f"- CPU per record, {item['mix']}: ours {item['ours_us']:.1f} µs vs 0.3.0 "
                         f"{item['theirs_us']:.1f} µs = {item['ratio']:.2f}x (target <= 0.5x: "
                         f"{mark(item['ratio'] <= 0.5)}); excluding startup "
                         + (f"{item['ours_ex']:.1f} vs {item['theirs_ex']:.1f} µs = {item['ratio_ex']:.2f}x."
                            if item["ratio_ex"] is not None else "n/a (too few records)."))
            if item["mix"] == "contacts":
                lines.append(f"- CPU per contact end to end (contacts only): {item['ours_us']:.1f} µs ("
                             + (f"{item['ours_ex']:.1f} µs" if item["ours_ex"] is not None else "n/a")
                             + f" excluding startup); target 50 µs: {mark(item['ours_us'] <= 50)}.")
    dups = [r for r in ours if r["dup_requests"]]
    lines.append("- No page fetched twice (ours; retries after a 429 not counted): " + (
        "met in every run." if not dups else "NOT met: " + "; ".join(
            f"scenario {r['scenario']} {r['mix']}: {r['dup_requests']} repeats, e.g. {r['dup_examples'][0]}"
            for r in dups)))
    extra = [r for r in ours if r["min_requests"] is not None and r["requests_ok"] > r["min_requests"]]
    lines.append("- No needless request (ours: successful requests = pages + 1 listing per parent stream): " + (
        "met in every run." if not extra else "NOT met: " + "; ".join(
            f"scenario {r['scenario']} {r['mix']}: {r['requests_ok']} vs {r['min_requests']}" for r in extra)))
    return lines


def details(bench):
    lines = ["| scen. | tap | streams | records per stream | requests by status | tap CPU user+sys s | "
             "sandbox CPU s | output MB | validated | validation s | notes |",
             "|---|---|---|---|---|--:|--:|--:|--:|--:|---|"]
    for r in bench.runs:
        per_stream = ", ".join(f"{k} {v:,}" for k, v in r["records_by_stream"].items())
        status = ", ".join(f"{k}: {v:,}" for k, v in r["status"].items())
        v = r["validation"]
        notes = list(r["count_mismatch"] and ["count mismatch: " + "; ".join(r["count_mismatch"])] or [])
        notes += v["errors"][:2] + v["problems"][:2]
        if r["dup_requests"]:
            notes.append(f"{r['dup_requests']} pages fetched twice, e.g. `{r['dup_examples'][0]}`")
        if r["note"]:
            notes.append(r["note"])
        lines.append(f"| {r['scenario']} | {r['tap']} | {r['mix']} | {per_stream} | {status} | "
                     f"{r['user']:.2f}+{r['sys']:.2f} | {r['sandbox_cpu']:.2f} | {r['bytes'] / 1e6:.1f} | "
                     f"{v['checked']:,} | {v['seconds']:.1f} | {'; '.join(n.replace('|', '/') for n in notes)} |")
    return lines


def print_report(bench, info, elapsed):
    print()
    print("tap-autopilot benchmark" + (" (--quick)" if bench.mode == "quick" else ""))
    print("  (a load average near or above the core count means other work shared the machine: "
          "wall times and CPU figures are then noisier)")
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
        print("Targets (issue 4)")
        print("\n".join("  " + line for line in target_lines))
        print()
    print(f"Bench time {elapsed:.0f} s.")


def markdown_report(bench, info, elapsed, argv):
    out = ["# tap-autopilot benchmark results", "",
           f"Written by `{' '.join(['benchmarks/run.py'] + argv)}` (`make bench`) in {elapsed:.0f} s. "
           "Figures are measured, not asserted; they move with the machine's load.", "",
           "## Machine", ""]
    out += [f"- {key}: {value}" for key, value in info.items()]
    out += ["", "## Scenarios", ""] + scenario_descriptions(bench.mode)
    out += ["", "Each scenario starts a fresh sandbox subprocess; the tap runs as a subprocess with its "
            "stdout read by a counting sink. CPU and peak RSS are the tap process's own rusage (os.wait4), "
            "not the sandbox's. The floor is successful requests / rate limit (n/a without a limit); "
            "requests shows `(min N)` when the count differs from the pages plus listings the data needs. "
            "'valid' is records that passed validation against the SCHEMA the tap sent / records checked "
            + (f"(all records up to {VALIDATE_ALL_UP_TO:,} per stream, then one in {VALIDATE_STRIDE}), "
               if bench.mode == "full" else
               f"(--quick: all records up to {QUICK_VALIDATE_ALL_UP_TO:,} per stream, then one in "
               f"{QUICK_VALIDATE_STRIDE}), ") + "with the "
            "records-per-stream counts checked against the sandbox's dataset.", "",
            "## Results", ""]
    out += markdown_table(bench.runs)
    for title, lines in bench.sections:
        out += ["", f"## {title}", ""] + lines
    target_lines = targets(bench) if bench.runs else []
    if target_lines:
        out += ["", "## Targets (issue 4)", ""] + target_lines
    if bench.runs:
        out += ["", "## Details", ""] + details(bench)
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help="scenarios to run, by number or name: " +
                             ", ".join(f"{n} ({name})" if n != name else n for n, name, _ in SCENARIOS))
    parser.add_argument("--workers", type=int, help="the tap's max_concurrent_requests (default: the tap's)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each tap per stream mix in scenario 5; the least CPU counts (default 3)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a tap run is killed")
    parser.add_argument("--results", metavar="PATH",
                        help="Markdown output (default benchmarks/RESULTS.md for a full run of every "
                             "scenario; none for --quick or --only unless given)")
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
            except Exception as error:  # pylint: disable=broad-except
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
