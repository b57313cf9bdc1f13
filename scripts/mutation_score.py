"""Print the score of the last mutation run (`make mutation`) per module, as a Markdown table.

Reads the results mutmut keeps beside each mutated module (mutants/**/*.py.meta). A mutant
counts as caught when tests/unit failed (killed) or hung on it (timeout). Survivors are listed
by `.tools/mutmut/bin/mutmut results` and shown by `mutmut show NAME`.
Run with the mutmut tool venv's python (it reads mutmut's own exit-code table).
"""

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CAUGHT = ("killed", "timeout")
COLUMNS = ("killed", "timeout", "survived", "no tests")


def main(root="mutants"):
    rows = []
    total = Counter()
    for meta in sorted(Path(root).rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(status_by_exit_code[code] for code in exit_codes.values())
        counts["mutants"] = len(exit_codes)
        module = meta.relative_to(root).as_posix().removesuffix(".meta")
        rows.append((module, counts))
        total.update(counts)
    if not rows:
        sys.exit(f"no mutation results under {root}/: run `make mutation` first")
    rows.append(("all", total))
    print("| module | mutants | " + " | ".join(COLUMNS) + " | other | caught |")
    print("|---" * (len(COLUMNS) + 4) + "|")
    for module, counts in rows:
        other = counts["mutants"] - sum(counts[column] for column in COLUMNS)
        caught = sum(counts[status] for status in CAUGHT)
        share = f"{100 * caught / counts['mutants']:.0f}%" if counts["mutants"] else "-"
        cells = [str(counts[column]) for column in COLUMNS]
        print(f"| {module} | {counts['mutants']} | " + " | ".join(cells) + f" | {other} | {share} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
