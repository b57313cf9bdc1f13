"""The sandbox as a subprocess (`python -m tap_autopilot.sandbox`), with its admin API and CPU."""

import json
import os
import select
import signal
import subprocess
import time
import urllib.request

from settings import ROOT, SEED, VENV_PY


class Sandbox:
    """`python -m tap_autopilot.sandbox` in a subprocess; base URL from its first stdout line."""

    def __init__(self, workdir, contacts, lists, segments, seed=SEED, latency_ms=None, rate_limit=None):
        self.workdir = workdir
        self.size = dict(contacts=contacts, lists=lists, segments=segments, seed=seed)
        self.latency_ms = latency_ms
        self.rate_limit = rate_limit
        self.proc: subprocess.Popen | None = None
        self.base_url = None
        self.root = None

    def __enter__(self):
        cmd = [
            VENV_PY,
            "-m",
            "tap_autopilot.sandbox",
            "--port",
            "0",
            "--contacts",
            str(self.size["contacts"]),
            "--lists",
            str(self.size["lists"]),
            "--segments",
            str(self.size["segments"]),
            "--seed",
            str(self.size["seed"]),
        ]
        if self.latency_ms:
            cmd += ["--latency-ms", str(self.latency_ms)]
        if self.rate_limit:
            cmd += ["--rate-limit", str(self.rate_limit)]
        self.log_path = os.path.join(self.workdir, "sandbox.log")
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT)
        stdout = self.proc.stdout
        assert stdout is not None  # stdout=PIPE
        ready, _, _ = select.select([stdout], [], [], 60)
        line = stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http"):
            self.__exit__()
            raise RuntimeError(
                f"the sandbox did not print its base URL (got {line!r}); see {self.log_path}: " + tail(self.log_path)
            )
        self.base_url = line
        self.root = line[: -len("/v1")] if line.endswith("/v1") else line
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
        request = urllib.request.Request(
            f"{self.root}/_admin/{name}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self):
        return self._admin("GET", "stats")

    def reset_stats(self):
        self._admin("POST", "reset_stats")

    def set_faults(self, **faults):
        """Change fault knobs (None restores a knob's default: off)."""
        self._admin("POST", "faults", faults)

    def cpu_seconds(self):
        """user+sys CPU of the sandbox process so far (from /proc)."""
        if self.proc is None:
            return float("nan")
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError, AttributeError):
            return float("nan")


def tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""
