"""What the HTTP layer's unit tests share: a fake clock, a fake session and a client on both
(no server, no socket, no real sleep)."""

from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.http.retry import RetryPolicy

API_KEY = "unit-test-key"


class FakeTime:
    """A clock that only moves when something sleeps. `on_sleep` runs inside a sleep,
    to let a test act while a thread waits."""

    def __init__(self, now=1000.0):
        self.now = now
        self.sleeps = []
        self.on_sleep = None

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            hook, self.on_sleep = self.on_sleep, None
            hook()


class FakeRaw:
    """The part of urllib3's response the client reads a streamed body through."""

    connection = None

    def __init__(self, content):
        self._content = content

    def read1(self, size, decode_content=True):
        chunk, self._content = self._content[:size], self._content[size:]
        return chunk


class FakeResponse:
    def __init__(self, status, body=b'{"lists": []}', headers=None):
        self.status_code = status
        self.content = body if isinstance(body, bytes) else body.encode()
        self.headers = headers or {}
        self.raw = FakeRaw(self.content)

    def close(self):
        pass


class FakeSession:
    """Answers each GET with the next scripted response (or raises the scripted exception);
    the last one repeats. Records every URL asked for."""

    def __init__(self, *script):
        self.script = list(script)
        self.urls = []

    def get(self, url, timeout=None, stream=False, allow_redirects=True):
        assert allow_redirects is False, "the client must not follow redirects (they would take the key along)"
        self.urls.append(url)
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, BaseException):
            raise answer
        answer.raw = FakeRaw(answer.content)  # a repeated answer is read again from its start
        return answer


def make_client(session, fake_time, rate=5, uniform=None):
    client = AutopilotClient(
        {"api_key": API_KEY, "base_url": "http://autopilot.invalid/v1", "max_requests_per_second": rate},
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    client._session = lambda: session  # type: ignore[method-assign]  # the network, stubbed
    if uniform is not None:
        client.retry = RetryPolicy(base=1.0, clock=fake_time.clock, sleep=fake_time.sleep, uniform=uniform)
    return client


def pages_session(*bodies, headers=None):
    return FakeSession(*(FakeResponse(200, body, headers) for body in bodies))


TIMEOUT = 10  # a safety net against a hung test, never a measured duration
