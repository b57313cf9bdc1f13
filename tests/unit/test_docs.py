"""The documentation's links: every relative link in README.md and docs/*.md names a file
that exists and, when it has a #fragment, a heading (or an HTML id) of that file, with
anchors made the way GitHub makes them. Plain text parsing, no Markdown library: links
inside code (fenced blocks, `spans`) are not links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](destination) or ![alt](destination), with an optional "title"; <destination> too.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
# [label]: destination (a reference definition)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ID = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def documentation_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fence = [], None
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
        else:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: the text as shown (links, code and emphasis
    marks gone), lower case, only letters, digits, spaces, hyphens and underscores kept,
    each space a hyphen."""
    shown = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    shown = shown.replace("`", "")
    shown = re.sub(r"[^\w\- ]", "", shown.lower())
    return shown.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a file offers: its headings' slugs (repeats numbered -1, -2, ... as
    GitHub numbers them) and the ids of its HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(text):
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(_HTML_ID.findall(line))
    return found


def relative_links(text: str) -> list[str]:
    """The destinations of the links that point inside the repository (no scheme such as
    https: or mailto:), in order."""
    links = []
    for line in _prose_lines(text):
        found = [m.group(1) for m in _INLINE_LINK.finditer(_CODE_SPAN.sub("", line))]
        reference = _REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
        links += [link.strip("<>") for link in found if not _SCHEME.match(link.strip("<>"))]
    return links


def broken_links(page: Path, root: Path = REPO_ROOT) -> list[str]:
    """'page: link (why)' for every relative link of `page` that does not resolve
    (`page` named relative to `root`)."""
    broken = []
    for link in relative_links(page.read_text(encoding="utf-8")):
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        name = f"{page.relative_to(root)}: {link}"
        if not target.exists():
            broken.append(f"{name} (no such file)")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{name} (no such heading in {target.name})")
    return broken


def test_every_relative_link_in_the_readme_and_docs_resolves_to_a_file_and_heading():
    pages = documentation_files()
    assert len(pages) > 1, "docs/*.md not found"
    assert relative_links(pages[0].read_text(encoding="utf-8")), "no relative link found in the README"
    assert [line for page in pages for line in broken_links(page)] == []


def test_the_link_check_reports_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "state.md").write_text("# State\n\n## Removals: `ACTIVATE_VERSION`\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/state.md#removals-activate_version) [gone](docs/gone.md)\n"
        "[no heading](docs/state.md#removals) [web](https://example.com/x.md)\n"
        "```sh\n[in code](docs/nowhere.md)\n```\n"
        "`[in a span](docs/nowhere.md)` [self](#state)\n",
        encoding="utf-8",
    )
    assert broken_links(page, root=tmp_path) == [
        "README.md: docs/gone.md (no such file)",
        "README.md: docs/state.md#removals (no such heading in state.md)",
        "README.md: #state (no such heading in README.md)",
    ]


@pytest.mark.parametrize(
    "heading, anchor",
    [
        ("Removals: ACTIVATE_VERSION", "removals-activate_version"),
        ("Contacts in full-table mode", "contacts-in-full-table-mode"),
        ("With `cron`", "with-cron"),
        ("See [State](state.md) (and more)", "see-state-and-more"),
        ("Größe über alles", "größe-über-alles"),
    ],
)
def test_heading_anchors_are_made_as_github_makes_them(heading, anchor):
    assert slug(heading) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor_and_headings_in_code_none():
    text = '# Tap\n## Notes\n```sh\n# not a heading\n```\n## Notes\n<a name="here"></a>\n'
    assert anchors(text) == {"tap", "notes", "notes-1", "here"}


def test_the_readme_quick_start_shows_make_demo_and_make_test():
    """CI and newcomers look for these two commands at the top of the README."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = text[text.index("## Quick start") :]
    block = re.search(r"```sh\n(.*?)```", quick_start, re.S)
    assert block, "no sh block in the README's quick start"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert {"make demo", "make test"} <= set(commands)
