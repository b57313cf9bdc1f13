"""The README's Meltano commands, verbatim, with real Meltano 4 from its own
virtualenv (.tools/meltano, `make tools`). Offline from MeltanoHub: the tap comes
from this checkout's meltano-plugin.yml, target-jsonl from a local definition
(both installed from PyPI/the checkout by Meltano itself).

init, add, config set, select, `meltano run` twice with a change in the sandbox in
between (the second run must be incremental from the state Meltano stored), the
documented job and schedule, Meltano's refusal to start a pipeline that is already
running, and a SIGTERM to `meltano run` reaching the tap, which stops cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import helpers
import pytest
import tools

pytestmark = pytest.mark.meltano

MELTANO = tools.TOOLS_DIR / "meltano" / "bin" / "meltano"
API_KEY = "sk-meltano-9d2b7c41e0a6f358-NEVER-PRINT"
STATE_ID = "dev:tap-autopilot-to-target-jsonl"

TARGET_JSONL_DEFINITION = """\
name: target-jsonl
namespace: target_jsonl
pip_url: target-jsonl==0.1.4 singer-python==5.8.0
executable: target-jsonl
settings:
  - name: destination_path
    kind: string
  - name: do_timestamp_file
    kind: boolean
"""


class Project:
    def __init__(self, directory):
        self.dir = directory
        self.env = dict(
            os.environ,
            PATH=f"{MELTANO.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        )

    def meltano(self, *args, check=True, timeout=300):
        proc = subprocess.run(
            [str(MELTANO), *args], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert proc.returncode == 0, (
                f"meltano {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        assert API_KEY not in proc.stdout + proc.stderr, "the API key was printed"
        return proc

    def state(self):
        out = self.meltano("state", "get", STATE_ID).stdout
        return json.loads(out.strip().splitlines()[-1])["singer_state"]

    def contact_ids(self):
        path = self.dir / "output" / "contacts.jsonl"
        return [json.loads(line)["contact_id"] for line in path.read_text().splitlines()]


def _touch(sb, count):
    return set(helpers.admin(sb, "touch", {"count": count})["contact_ids"])


def test_meltano4_readme_pipeline(tmp_path, sandbox_factory):
    tools.require(MELTANO)
    sb = sandbox_factory(contacts=300, lists=2, segments=1, seed=71, api_key=API_KEY)
    (tmp_path / "target-jsonl.yml").write_text(TARGET_JSONL_DEFINITION)

    # README, "Meltano": the project, where the checkout is, the plugin, its settings.
    Project(tmp_path).meltano("init", "autopilot-pipeline")
    project = Project(tmp_path / "autopilot-pipeline")
    with open(project.dir / ".env", "a", encoding="utf-8") as env:
        env.write(f"TAP_AUTOPILOT_CHECKOUT={tools.REPO_ROOT}\n")
    add_tap = (
        "add",
        "--plugin-type",
        "extractor",
        "tap-autopilot",
        "--from-ref",
        str(tools.REPO_ROOT / "meltano-plugin.yml"),
    )
    project.meltano(*add_tap)
    project.meltano("config", "set", "tap-autopilot", "api_key", API_KEY)
    project.meltano("config", "set", "tap-autopilot", "start_date", "2020-01-01")
    project.meltano("config", "set", "tap-autopilot", "base_url", sb.base_url)  # the sandbox
    project.meltano("config", "set", "tap-autopilot", "max_requests_per_second", "50")
    for stream in ("contacts", "lists", "lists_contacts"):
        project.meltano("select", "tap-autopilot", stream, "*")
    project.meltano("add", "--plugin-type", "loader", "target-jsonl", "--from-ref", str(tmp_path / "target-jsonl.yml"))
    project.meltano("config", "set", "target-jsonl", "destination_path", "output")
    project.meltano("config", "set", "target-jsonl", "do_timestamp_file", "false")
    assert API_KEY not in (project.dir / "meltano.yml").read_text(), "the key belongs in .env, not meltano.yml"

    # Re-running the documented add keeps the pip_url pointing at the checkout.
    project.meltano(*add_tap)
    assert "pip_url: -e ${TAP_AUTOPILOT_CHECKOUT}" in (project.dir / "meltano.yml").read_text()

    ran = project.meltano("run", "tap-autopilot", "target-jsonl")
    # Every key of the config Meltano writes is a setting of the tap (no unknown-key warning).
    assert "is not a setting of this tap" not in ran.stdout + ran.stderr, ran.stderr[-3000:]
    first = project.contact_ids()
    assert sorted(first) == sorted(helpers.updated_since(sb, helpers.instant("2020-01-01T00:00:00Z")))  # the plain date
    state = project.state()
    assert state["currently_syncing"] is None
    bookmark = helpers.instant(state["bookmarks"]["contacts"]["updated_at"])

    touched = _touch(sb, 3)
    expected = helpers.updated_since(sb, bookmark)
    assert touched <= expected and len(expected) < 10
    project.meltano("run", "tap-autopilot", "target-jsonl")
    assert sorted(project.contact_ids()[len(first) :]) == sorted(expected), "the second run was not incremental"
    second = project.state()
    assert helpers.instant(second["bookmarks"]["contacts"]["updated_at"]) > bookmark

    # docs/scheduling.md, "With Meltano": the job and schedule, run as its cron line runs it.
    project.meltano("job", "add", "autopilot", "--tasks", "[tap-autopilot target-jsonl]")
    project.meltano("schedule", "add", "autopilot-hourly", "--job", "autopilot", "--interval", "@hourly")
    written = len(project.contact_ids())
    expected = helpers.updated_since(sb, helpers.instant(second["bookmarks"]["contacts"]["updated_at"])) | _touch(sb, 2)
    project.meltano("schedule", "run", "autopilot-hourly")
    assert sorted(project.contact_ids()[written:]) == sorted(expected), "the scheduled run lost the state"

    # The job (docs/scheduling.md's plain cron line) hangs on a stuck request; a second run of the
    # same pipeline is refused while it runs.
    sb.reset_stats()
    sb.set_faults(stall_every=2, stall_seconds=600)
    running = subprocess.Popen(
        [str(MELTANO), "run", "autopilot"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while sb.stats()["stalled"] < 1:
            assert running.poll() is None and time.monotonic() < deadline, "the run never reached the sandbox"
            time.sleep(0.1)
        overlapping = project.meltano("schedule", "run", "autopilot-hourly", check=False)
        assert overlapping.returncode != 0
        assert "is already running" in overlapping.stdout + overlapping.stderr
        # SIGTERM to Meltano reaches the tap, which stops without waiting for the stuck request.
        running.send_signal(signal.SIGTERM)
        output, _ = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode != 0
    assert "tap-autopilot WARNING Stopped by SIGTERM. The last STATE written covers every record written" in output, (
        output[-4000:]
    )
    assert "Traceback" not in output

    # docs/running.md, "Reset one stream", under Meltano: contacts start again from
    # start_date; every other bookmark stays as it was (Meltano stores the state it is given
    # parsed, so the bookmarks are compared as JSON, not as the file's bytes).
    sb.set_faults(stall_every=None)
    before = project.meltano("state", "get", STATE_ID).stdout.strip().splitlines()[-1]
    (project.dir / "state.json").write_text(before + "\n")
    project.meltano("invoke", "tap-autopilot", "--state", "state.json", "--reset-stream", "contacts")
    project.meltano("state", "set", "--force", STATE_ID, "--input-file", "state.json")
    after = project.state()
    kept = json.loads(before)["singer_state"]
    assert "contacts" not in after["bookmarks"]
    for stream in ("lists", "lists_contacts"):
        assert json.dumps(after["bookmarks"][stream]) == json.dumps(kept["bookmarks"][stream])
    written = len(project.contact_ids())
    project.meltano("run", "tap-autopilot", "target-jsonl")
    assert sorted(project.contact_ids()[written:]) == sorted(
        helpers.updated_since(sb, helpers.instant("2020-01-01T00:00:00Z"))
    ), "contacts did not start again from start_date"
    assert project.state()["bookmarks"]["lists"] != kept["bookmarks"]["lists"]  # a new pass, as every run


# ---- many accounts, one plugin each, into one PostgreSQL -------------------------

TARGET_POSTGRES_DEFINITION = """\
name: target-postgres
namespace: target_postgres
pip_url: -r {requirements}
executable: target-postgres
settings:
  - name: host
  - name: port
    kind: integer
  - name: user
  - name: password
    kind: password
    sensitive: true
  - name: database
  - name: default_target_schema
  - name: load_method
  - name: hard_delete
    kind: boolean
  - name: activate_version
    kind: boolean
  - name: add_record_metadata
    kind: boolean
"""
TOOL_REQUIREMENTS = tools.REPO_ROOT / "scripts" / "tools"


def _project_with_the_tap(tmp_path, name: str, env: str = "") -> Project:
    """A new Meltano project `name` with tap-autopilot added from this checkout's
    meltano-plugin.yml (the README's way), `env` appended to its .env."""
    Project(tmp_path).meltano("init", name)
    project = Project(tmp_path / name)
    with open(project.dir / ".env", "a", encoding="utf-8") as dotenv:
        dotenv.write(f"TAP_AUTOPILOT_CHECKOUT={tools.REPO_ROOT}\n{env}")
    project.meltano(
        "add", "--plugin-type", "extractor", "tap-autopilot", "--from-ref", str(tools.REPO_ROOT / "meltano-plugin.yml")
    )
    return project


def _add_target_postgres(project: Project, tmp_path, postgres, **config) -> None:
    """meltanolabs-target-postgres as the project's loader, from a local definition, with the
    postgres fixture's connection and `config` set."""
    definition = tmp_path / "target-postgres.yml"
    definition.write_text(TARGET_POSTGRES_DEFINITION.format(requirements=TOOL_REQUIREMENTS / "target-postgres.txt"))
    project.meltano("add", "--plugin-type", "loader", "target-postgres", "--from-ref", str(definition))
    for key, value in postgres.target_postgres_config(**config).items():
        project.meltano("config", "set", "target-postgres", key, str(value).lower() if value is True else str(value))


ACCOUNT_KEYS = {"acme": "sk-acme-5c0e9a7b31d4f862-NEVER-PRINT", "globex": "sk-globex-82f1d6a0c9e4b357-NEVER-PRINT"}


def test_meltano4_two_accounts_into_one_postgres(tmp_path, sandbox_factory, postgres):
    """docs/accounts.md: one plugin per account inheriting from tap-autopilot, each
    into its own schema ($MELTANO_EXTRACT__LOAD_SCHEMA) with its own state, run in
    parallel. The two sandboxes share a list id (contactlist_build-your-journey)."""
    tools.require(MELTANO)
    sandboxes = {
        name: sandbox_factory(contacts=120, lists=3, segments=1, seed=seed, api_key=ACCOUNT_KEYS[name])
        for name, seed in (("acme", 81), ("globex", 82))
    }
    lists = {name: {g["list_id"] for g in sb.dataset.lists()} for name, sb in sandboxes.items()}
    shared = lists["acme"] & lists["globex"]
    assert "contactlist_build-your-journey" in shared
    dbname = postgres.create_database("accounts")
    project = _project_with_the_tap(tmp_path, "accounts")
    project.meltano("config", "set", "tap-autopilot", "start_date", "2015-01-01")
    project.meltano("config", "set", "tap-autopilot", "max_requests_per_second", "50")
    for name, sb in sandboxes.items():
        plugin = f"tap-autopilot-{name}"
        project.meltano("add", "--plugin-type", "extractor", plugin, "--inherit-from", "tap-autopilot")
        project.meltano("config", "set", plugin, "api_key", ACCOUNT_KEYS[name])
        project.meltano("config", "set", plugin, "base_url", sb.base_url)  # the sandbox
        project.meltano("config", "set", plugin, "_load_schema", f"autopilot_{name}")
    _add_target_postgres(
        project,
        tmp_path,
        postgres,
        database=dbname,
        load_method="upsert",
        hard_delete=True,
        activate_version=True,
        add_record_metadata=True,
    )
    project.meltano("config", "set", "target-postgres", "default_target_schema", "$MELTANO_EXTRACT__LOAD_SCHEMA")
    meltano_yml = (project.dir / "meltano.yml").read_text()
    assert not any(key in meltano_yml for key in ACCOUNT_KEYS.values()), "the keys belong in .env"

    def run_all():
        runs = [
            subprocess.Popen(
                [str(MELTANO), "run", f"tap-autopilot-{name}", "target-postgres"],
                cwd=project.dir,
                env=project.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in sandboxes
        ]
        for run in runs:
            output, _ = run.communicate(timeout=600)
            assert run.returncode == 0, output[-4000:]
            assert not any(key in output for key in ACCOUNT_KEYS.values()), "an API key was printed"

    def state(name):
        out = project.meltano("state", "get", f"dev:tap-autopilot-{name}-to-target-postgres").stdout
        return json.loads(out.strip().splitlines()[-1])["singer_state"]

    def table(name, sql):
        return set(postgres.query(sql.format(schema=f"autopilot_{name}"), dbname=dbname))

    run_all()
    for name, sb in sandboxes.items():
        expected = helpers.expected_keys(sb)
        assert {r[0] for r in table(name, "select list_id from {schema}.lists")} == lists[name]
        assert table(name, "select list_id, contact_id from {schema}.lists_contacts") == expected["lists_contacts"]
        assert {r[0] for r in table(name, "select contact_id from {schema}.contacts")} == expected["contacts"]
    first = {name: state(name) for name in sandboxes}
    for name in sandboxes:
        assert first[name]["bookmarks"]["contacts"]["updated_at"]
    globex_contacts = table("globex", "select contact_id, email, updated_at::text from {schema}.contacts")

    # A change in one account reaches only its schema; the other's state and rows stay.
    touched = set(helpers.admin(sandboxes["acme"], "touch", {"count": 2})["contact_ids"])
    run_all()
    second = {name: state(name) for name in sandboxes}
    assert second["globex"]["bookmarks"]["contacts"] == first["globex"]["bookmarks"]["contacts"]
    assert second["acme"]["bookmarks"]["contacts"] != first["acme"]["bookmarks"]["contacts"]
    acme_now = {
        r[0]: float(r[1])
        for r in table("acme", "select contact_id, extract(epoch from updated_at)::text from {schema}.contacts")
        if r[1] is not None
    }
    bookmark = helpers.instant(first["acme"]["bookmarks"]["contacts"]["updated_at"]).timestamp()
    assert all(acme_now[contact] > bookmark for contact in touched)
    assert not touched & {r[0] for r in table("globex", "select contact_id from {schema}.contacts")}
    assert table("globex", "select contact_id, email, updated_at::text from {schema}.contacts") == (globex_contacts)


# ---- the dbt package as a Meltano utility, installed from git with `subdirectory` -------------

DBT_UTILITY_DEFINITION = """\
name: dbt-postgres
namespace: dbt_postgres
pip_url: -r {requirements}
executable: dbt
commands:
  deps:
    args: deps --project-dir transform --profiles-dir transform/profiles
  build:
    args: build --project-dir transform --profiles-dir transform/profiles
"""


def _package_repository(tmp_path) -> str:
    """A git repository holding this checkout's dbt/ as tap-autopilot's does (the package in
    its `dbt` folder), on a branch: what `git:` with `subdirectory: dbt` installs from."""
    repo = tmp_path / "tap-autopilot.git"
    shutil.copytree(
        tools.REPO_ROOT / "dbt", repo / "dbt", ignore=shutil.ignore_patterns("target", "dbt_packages", "logs")
    )
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com")
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    for argv in (["init", "-q", "-b", "dbt-package"], ["add", "dbt"], ["commit", "-q", "-m", "the dbt package"]):
        subprocess.run(["git", *argv], cwd=repo, env=env, check=True, capture_output=True, timeout=60)
    return repo.as_uri()


def test_meltano_runs_the_dbt_package_after_the_load_installed_from_git(tmp_path, sandbox_factory, postgres):
    """docs/analytics.md, "Under Meltano": `meltano run tap-autopilot target-postgres
    dbt-postgres:deps dbt-postgres:build`, with the package in the dbt project's packages.yml as
    `git:` + `subdirectory: dbt` and its schema var set there; the models hold the account."""
    tools.require(MELTANO)
    sb = sandbox_factory(contacts=150, lists=3, segments=2, seed=91, api_key=API_KEY)
    dbname = postgres.create_database("meltano_dbt")
    project = _project_with_the_tap(tmp_path, "analytics", env="DBT_SEND_ANONYMOUS_USAGE_STATS=false\n")
    # A start_date after the account's oldest contacts: as with the default (one year back),
    # some contacts are not replicated while every membership is; fixed, not today's.
    start = helpers.middle_day(sb)
    settings = {"api_key": API_KEY, "base_url": sb.base_url, "max_requests_per_second": "50"}
    settings["start_date"] = start.date().isoformat()
    for key, value in settings.items():
        project.meltano("config", "set", "tap-autopilot", key, value)
    _add_target_postgres(
        project,
        tmp_path,
        postgres,
        database=dbname,
        default_target_schema="raw_autopilot",
        hard_delete=True,
        activate_version=True,
    )
    utility = tmp_path / "dbt-postgres.yml"
    utility.write_text(DBT_UTILITY_DEFINITION.format(requirements=TOOL_REQUIREMENTS / "dbt.txt"))
    project.meltano("add", "--plugin-type", "utility", "dbt-postgres", "--from-ref", str(utility))

    transform = project.dir / "transform"
    (transform / "profiles").mkdir(parents=True)
    (transform / "dbt_project.yml").write_text(
        "name: analytics\nversion: '1.0.0'\nconfig-version: 2\nprofile: warehouse\n"
        "vars:\n  autopilot:\n    autopilot_schema: raw_autopilot\n"
    )
    (transform / "packages.yml").write_text(
        f"packages:\n  - git: '{_package_repository(tmp_path)}'\n    revision: dbt-package\n    subdirectory: dbt\n"
    )
    (transform / "profiles" / "profiles.yml").write_text(
        json.dumps({"warehouse": {"target": "dev", "outputs": {"dev": postgres.dbt_profile(dbname)}}})
    )

    ran = project.meltano(
        "run", "tap-autopilot", "target-postgres", "dbt-postgres:deps", "dbt-postgres:build", timeout=900
    )
    said = ran.stdout + ran.stderr
    # Contacts last changed before start_date are not replicated, while every membership is:
    # the membership-to-contact relationship tests warn about them, nothing fails.
    assert "ERROR=0" in said and "Warning in test relationships_autopilot__list_memberships_contact_id" in said, said[
        -4000:
    ]
    assert (transform / "dbt_packages" / "autopilot" / "dbt_project.yml").exists()

    ds = sb.dataset
    members = helpers.expected_keys(sb)
    counts = dict(postgres.query("select list_id, member_count::text from analytics.autopilot__lists", dbname=dbname))
    assert counts == {g["list_id"]: str(len(ds.list_members(g["list_id"]))) for g in ds.lists()}
    pairs = set(postgres.query("select list_id, contact_id from analytics.autopilot__list_memberships", dbname=dbname))
    assert pairs == members["lists_contacts"]
    loaded = {r[0] for r in postgres.query("select contact_id from analytics.autopilot__contacts", dbname=dbname)}
    assert loaded == helpers.updated_since(sb, start) and 0 < len(loaded) < len(members["contacts"])
    assert {c for _, c in pairs} - loaded, "no membership names a contact left out: nothing to warn of"
    passes = postgres.query("select count(*)::text from raw_autopilot.completed_passes", dbname=dbname)
    assert passes == [("4",)]
