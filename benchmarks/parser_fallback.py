"""Scenario "parser": the page parser's fallback. orjson parses a clean page; a page it
refuses (one value RFC 8259 allows but orjson does not, or bytes that are not UTF-8) takes
the standard library's parser. Timed in this process on one contacts page of the sandbox's
default data, as served, and on the same page with one bad value."""

import time

from settings import SEED, SIZES

from tap_autopilot.sandbox.dataset import Dataset
from tap_autopilot.sandbox.handler import _page_body
from tap_autopilot.values.cleaning import parse_body

# One bad value each, put in the page's first FirstName.
BAD_VALUES = (
    ("a lone surrogate escape", b'"FirstName":"\\ud83d'),
    ("bytes that are not UTF-8", b'"FirstName":"\xfc'),
)
LOOPS = 50
REPEATS = 5


def per_page_us(body):
    """Least of REPEATS timings of LOOPS parses, in µs per parse."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(LOOPS):
            parse_body(body)
        best = min(best, (time.perf_counter() - started) / LOOPS)
    return best * 1e6


def scenario_parser(bench):
    dataset = Dataset(contacts=SIZES[bench.mode]["s5"]["contacts"], seed=SEED)
    page = dataset.contacts_page(None)
    clean = _page_body(page, dataset)
    documents = len(page.indexes)
    assert b'"FirstName":"' in clean
    clean_us = per_page_us(clean)
    lines = [
        f"One /contacts page of the default data ({documents} documents, {len(clean):,} bytes), parsed by "
        f"values.parse_body in the benchmark's process; least of {REPEATS} x {LOOPS} parses.",
        "",
        "| page | parser | µs per page | µs per document | vs clean |",
        "|---|---|--:|--:|--:|",
        f"| clean | orjson | {clean_us:,.0f} | {clean_us / documents:.1f} | 1.00x |",
    ]
    for label, bad in BAD_VALUES:
        body = clean.replace(b'"FirstName":"', bad, 1)
        value, repaired = parse_body(body)
        assert len(value["contacts"]) == documents and repaired == (b"\xfc" in bad)
        us = per_page_us(body)
        lines.append(
            f"| one value: {label} | orjson refuses, then json | {us:,.0f} | {us / documents:.1f} | "
            f"{us / clean_us:.2f}x |"
        )
    bench.sections.append(("Scenario parser: the page parser's fallback (a page with one bad value)", lines))
