"""The PostgreSQL harness itself works: server up, `warehouse` db, query() round-trips."""

import subprocess

import pytest


def test_select_one(postgres):
    assert postgres.query("select 1") == [("1",)]
    assert postgres.dbname == "warehouse"
    assert postgres.scalar("select current_database()") == "warehouse"


def test_query_types_nulls_and_multiline(postgres):
    rows = postgres.query("select * from (values (1, null::text, ''), (2, E'a\\nb|c', 'x')) v(i, a, b) order by i")
    assert rows == [("1", None, ""), ("2", "a\nb|c", "x")]
    assert postgres.query("select 1 where false") == []


def test_listens_on_loopback_only(postgres):
    assert postgres.host == "127.0.0.1"
    assert postgres.scalar("show listen_addresses") == "127.0.0.1"
    assert postgres.scalar("show port") == str(postgres.port)


def test_sql_error_raises(postgres):
    with pytest.raises(RuntimeError, match="does_not_exist"):
        postgres.query("select * from does_not_exist")


def test_tables_roundtrip_and_extra_database(postgres):
    postgres.psql("create table t (id int primary key, v jsonb)")
    postgres.psql("""insert into t values (1, '{"a": 1}')""")
    assert postgres.query("select id, v->>'a' from t") == [("1", "1")]
    postgres.psql("drop table t")
    name = postgres.create_database("harness_extra")
    assert postgres.scalar("select 1", dbname=name) == "1"


def test_target_postgres_config(postgres):
    cfg = postgres.target_postgres_config(default_target_schema="s")
    assert cfg == {
        "host": "127.0.0.1",
        "port": postgres.port,
        "user": "postgres",
        "password": postgres.password,
        "database": "warehouse",
        "default_target_schema": "s",
    }


def test_psql_over_tcp_with_password(postgres):
    out = subprocess.run(
        [str(postgres.bindir / "psql"), "-X", "-At", postgres.url, "-c", "select 42"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "42"


def test_target_postgres_loads_into_harness(postgres, tmp_path):
    """The pinned target-postgres (from `make tools`) writes into the harness server."""
    import json

    import tools

    tools.require(tools.TARGET_POSTGRES)
    postgres.psql("drop schema if exists harness_check cascade")
    cfg = tmp_path / "target-postgres.json"
    cfg.write_text(json.dumps(postgres.target_postgres_config(default_target_schema="harness_check")))
    messages = (
        "\n".join(
            json.dumps(m)
            for m in [
                {
                    "type": "SCHEMA",
                    "stream": "things",
                    "key_properties": ["id"],
                    "schema": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "updated_at": {"type": ["null", "string"], "format": "date-time"},
                        },
                    },
                },
                {"type": "RECORD", "stream": "things", "record": {"id": "a", "updated_at": "2020-01-01T00:00:00Z"}},
                {"type": "RECORD", "stream": "things", "record": {"id": "b", "updated_at": None}},
                {"type": "STATE", "value": {"bookmarks": {"things": {"updated_at": "2020-01-01T00:00:00Z"}}}},
            ]
        )
        + "\n"
    )
    proc = subprocess.run(
        [str(tools.TARGET_POSTGRES), "--config", str(cfg)], input=messages, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "bookmarks": {"things": {"updated_at": "2020-01-01T00:00:00Z"}}
    }
    assert postgres.query("select id, updated_at from harness_check.things order by id") == [
        ("a", "2020-01-01 00:00:00"),
        ("b", None),
    ]
    postgres.psql("drop schema harness_check cascade")
