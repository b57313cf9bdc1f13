"""A non-editable `pip install .` works: the schemas ship as package data.

For speed the package is installed with --no-deps into a fresh venv that borrows the
test environment's site-packages (singer-python, requests, backoff) through a .pth
file, placed after its own: the tap_autopilot imported is the installed copy, never
the source tree. The declared dependencies are checked from the installed metadata.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import helpers
import tools

# Not copied into the build tree: venvs, VCS, build debris, outputs.
_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".tools",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    "demo-output",
    ".bench",
    "*.pyc",
)


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, **kwargs)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_non_editable_install_runs_discovery_and_a_sync(tmp_path, sandbox_factory):
    # Build from a copy so the build leaves no debris in the repository.
    src = tmp_path / "src"
    shutil.copytree(tools.REPO_ROOT, src, ignore=_IGNORE)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=60)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", src],
        timeout=300,
        cwd=tmp_path,
    )
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip()
    )
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_test_dependencies.pth").write_text("\n".join(borrowed) + "\n")

    probe = _run(
        [
            python,
            "-c",
            "import json, importlib.metadata as m, tap_autopilot as t; "
            "print(json.dumps([t.__file__, m.requires('tap-autopilot')]))",
        ],
        cwd=tmp_path,
    )
    module_file, requires = json.loads(probe.stdout)
    package_dir = Path(module_file).parent
    assert package_dir == site / "tap_autopilot", module_file
    assert sorted(p.name for p in (package_dir / "schemas").glob("*.json")) == [
        "completed_passes.json",
        "contacts.json",
        "lists.json",
        "lists_contacts.json",
        "smart_segments.json",
        "smart_segments_contacts.json",
    ]
    names = [re.match(r"[A-Za-z0-9._-]+", r) for r in requires or []]
    assert all(names), requires
    declared = {name.group(0).lower() for name in names if name}
    assert {"singer-python", "requests", "backoff"} <= declared, requires

    tap = venv / "bin" / "tap-autopilot"
    sb = sandbox_factory(contacts=30, seed=5)
    config = helpers.write_config(tmp_path, sb)
    discovered = _run([tap, "--config", config, "--discover"], timeout=120, cwd=tmp_path)
    catalog = json.loads(discovered.stdout)
    assert sorted(e["tap_stream_id"] for e in catalog["streams"]) == [
        "completed_passes",
        "contacts",
        "lists",
        "lists_contacts",
        "smart_segments",
        "smart_segments_contacts",
    ]
    contacts = next(e for e in catalog["streams"] if e["tap_stream_id"] == "contacts")
    assert {"contact_id", "updated_at", "mail_received", "custom_favorite_color"} <= set(
        contacts["schema"]["properties"]
    )

    selected = helpers.write_json(tmp_path / "catalog.json", helpers.select(catalog, streams=["lists"]))
    synced = _run([tap, "--config", config, "--catalog", selected], timeout=120, cwd=tmp_path)
    messages = [json.loads(line) for line in synced.stdout.splitlines() if line.strip()]
    assert sorted(r["list_id"] for r in helpers.records_by_stream(messages)["lists"]) == sorted(
        g["list_id"] for g in sb.dataset.lists()
    )
    assert helpers.API_KEY not in discovered.stdout + discovered.stderr + synced.stdout + synced.stderr
