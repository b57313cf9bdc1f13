"""The benchmark's reachable floor: the least a Python process can take to read a scan's pages.

    .venv/bin/python benchmarks/sequential_client.py BASE_URL API_KEY [ENDPOINT]

Reads ENDPOINT (default /contacts) page after page, each cursor taken from the end of the
page before it, and nothing else: no parse of the contacts, no records, no other stream, no
rate limiter, and the standard library's http.client, the lightest client there is. It
imports the libraries the tap imports at startup (requests, singer-python, orjson) so that
the interpreter's startup is the tap's. The bench times it from spawn to exit
(runs.Bench.sequential_floor): no tap can read the same pages faster on the same machine,
so wall / floor of this client is what the floor leaves out (startup, and each page's send
and receive beyond the sandbox's latency).

Prints the number of pages; exits 1 (with the reason on stderr) on any status but 200.
"""

import http.client
import re
import sys
import urllib.parse

import orjson  # noqa: F401  (imported for the startup the tap pays, not used)
import requests  # noqa: F401
import singer  # noqa: F401

# The sandbox (like the live API) ends a page that has a next one with "bookmark":"<id>"}.
# The tap reads it with pagination.CURSOR_AT_END; not imported from there: this reference must not
# pay the tap's own imports.
BOOKMARK_AT_END = re.compile(rb'"bookmark"\s*:\s*"([^"\\]+)"\s*}\s*$')


def main(base_url, api_key, endpoint="/contacts"):
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    cursor, pages = None, 0
    while True:
        conn.request(
            "GET", url.path + endpoint + (f"/{cursor}" if cursor else ""), headers={"autopilotapikey": api_key}
        )
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            sys.stderr.write(f"sequential client: {response.status} on page {pages + 1}\n")
            return 1
        pages += 1
        match = BOOKMARK_AT_END.search(body[-200:])
        if match is None:
            print(pages)
            return 0
        cursor = match.group(1).decode()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
