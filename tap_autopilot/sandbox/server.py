"""The sandbox: a local Autopilot API v1 over real sockets (handler.py answers the
requests), its fault settings (faults.py) and its stats."""

import threading
import time
from collections import Counter, deque
from typing import Any

from .dataset import Dataset
from .faults import FAULT_DEFAULTS, check_faults
from .handler import API_PREFIX, ENDPOINTS, SandboxHTTPServer


class Sandbox:
    """A local Autopilot API v1 over real sockets, with fault injection and stats.

    sb = Sandbox(contacts=300, seed=7, error_every=5).start()
    sb.base_url  # 'http://127.0.0.1:PORT/v1'
    ...
    sb.stop()
    """

    def __init__(
        self,
        contacts=250,
        lists=3,
        segments=2,
        seed=1,
        api_key="sandbox-key",
        host="127.0.0.1",
        port=0,
        verbose=False,
        dense=False,
        epoch_ms_share=0.0,
        snake_case_share=0.0,
        awkward_ids=False,
        awkward_values=False,
        **faults,
    ):
        """dense, epoch_ms_share, snake_case_share, awkward_ids, awkward_values: the
        dataset's shape (see Dataset)."""
        self.dataset = Dataset(
            contacts=contacts,
            lists=lists,
            segments=segments,
            seed=seed,
            dense=dense,
            epoch_ms_share=epoch_ms_share,
            snake_case_share=snake_case_share,
            awkward_ids=awkward_ids,
            awkward_values=awkward_values,
        )
        self.api_key = api_key
        self.host = host
        self.verbose = verbose
        self._port = port
        self._lock = threading.Lock()
        self._faults = dict(FAULT_DEFAULTS)
        self._faults.update(check_faults(faults))
        self._window: deque[float] = deque()  # arrival times within the last second (rate limit)
        self._throttled = 0  # 429s sent so far
        self._stopping = threading.Event()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stats: dict[str, Any] = {}
        self.reset_stats()

    # ----- lifecycle ---------------------------------------------------------

    def start(self):
        """Listen (a free port unless one was given) and serve from a background thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = SandboxHTTPServer((self.host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="autopilot-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in latency/stall faults
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self):
        """Root URL (admin endpoints live under url + '/_admin/')."""
        return "http://%s:%d" % (self.host, self.port)

    @property
    def base_url(self):
        return self.url + API_PREFIX

    # ----- faults and stats --------------------------------------------------

    def set_faults(self, **faults):
        """Merge fault settings (None restores a default); returns all current settings."""
        checked = check_faults(faults)
        with self._lock:
            self._faults.update(checked)
            return dict(self._faults)

    def faults(self):
        with self._lock:
            return dict(self._faults)

    def reset_stats(self):
        """Zero every count, including the request counter that schedules faults."""
        with self._lock:
            self._stats = {
                "requests": 0,
                "by_endpoint": dict.fromkeys(ENDPOINTS, 0),
                "status": Counter(),
                "dropped": 0,
                "truncated": 0,
                "stalled": 0,
                "missing_key": 0,
                "garbled": 0,
                "trickled": 0,
                "paths": Counter(),  # every API request, per exact path
                "paths_ok": Counter(),  # only those answered 200
            }

    def stats(self):
        with self._lock:
            s = self._stats
            out = dict(s)
            out["by_endpoint"] = dict(s["by_endpoint"])
            out["status"] = {str(k): v for k, v in sorted(s["status"].items())}
            out["paths"] = dict(s["paths"])
            out["paths_ok"] = dict(s["paths_ok"])
            return out

    # ----- used by the handler -----------------------------------------------

    def _arrive(self, path, endpoint):
        """Count an API request: (its number, fault settings, 0 or the number of this 429)."""
        now = time.monotonic()
        with self._lock:
            s = self._stats
            s["requests"] += 1
            s["by_endpoint"][endpoint] = s["by_endpoint"].get(endpoint, 0) + 1
            s["paths"][path] += 1
            faults = dict(self._faults)
            limited = 0
            if faults["rate_limit"] is not None:
                window = self._window
                window.append(now)
                while window[0] <= now - 1.0:
                    window.popleft()
                if len(window) > faults["rate_limit"]:
                    self._throttled += 1
                    limited = self._throttled  # the how-manieth 429: picks its body
            else:
                self._window.clear()
            return s["requests"], faults, limited

    def _record_status(self, path, status):
        with self._lock:
            self._stats["status"][status] += 1
            if status == 200:
                self._stats["paths_ok"][path] += 1

    def _count(self, what):
        with self._lock:
            self._stats[what] += 1

    def _sleep(self, seconds):
        self._stopping.wait(seconds)
