"""Any current Python. With PYTHON unset, make takes the newest CPython from
3.11 up that scripts/pythons.sh finds (skipping interpreters that do not start, such as
a pyenv shim of a version not activated), says which, and `make test` runs the unit and
core end-to-end tests under each other version found."""

from __future__ import annotations

import os
import subprocess

import tools

PYTHONS = tools.REPO_ROOT / "scripts" / "pythons.sh"


def _found(env=None):
    out = subprocess.run([str(PYTHONS)], capture_output=True, text=True, timeout=60, env=env, check=True).stdout
    return [tuple(line.split(" ", 1)) for line in out.splitlines()]


def test_make_takes_the_newest_cpython_found_and_says_which(tmp_path):
    real = _found()
    assert real, "scripts/pythons.sh found no CPython >= 3.11, not even the one running the tests"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for version, path in real:
        (bin_dir / f"python{version.rsplit('.', 1)[0]}").symlink_to(path)
    broken = bin_dir / "python3.99"  # a shim whose version is not activated: cannot start
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.99: command not found' >&2\nexit 127\n")
    broken.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHON", "TOOLS_PYTHON", "FOUND_PYTHONS", "MAKEFLAGS", "MAKELEVEL")
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", HOME=str(tmp_path), PYENV_ROOT=str(tmp_path / "none")
    )

    found = _found(env)
    newest_version, newest_minor = real[0][0], real[0][0].rsplit(".", 1)[0]
    assert found[0] == (newest_version, str(bin_dir / f"python{newest_minor}"))
    assert [version for version, _ in found] == sorted(
        {v for v, _ in found}, key=lambda v: tuple(map(int, v.split("."))), reverse=True
    )
    assert "3.99" not in " ".join(version for version, _ in found)

    make = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(tools.REPO_ROOT), "test-other-pythons"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert make.returncode == 0, make.stderr
    lines = make.stdout.splitlines()
    assert lines[0] == (
        f"make: using {bin_dir / f'python{newest_minor}'} (CPython {newest_version}), "
        "the newest CPython >= 3.11 found; set PYTHON to choose"
    )
    others = [path for _, path in found[1:]]
    for path in others:
        assert path in make.stdout, f"{path} is not among the other Pythons make test runs"
    assert f"for python in {' '.join(others)}; do" in make.stdout.replace("\t", " ") or not others

    chosen = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(tools.REPO_ROOT), "test-other-pythons"],
        env=dict(env, PYTHON=real[-1][1]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert chosen.returncode == 0 and not chosen.stdout.startswith("make: using"), "PYTHON given: nothing to say"
