from pathlib import Path

from sqlalchemy import inspect

from qunflow.store.db import SCHEMA_HEAD, head_revision, migrate, schema_revision
from qunflow.workspace import Workspace, init_workspace, open_workspace


def test_init_creates_migrated_database_in_wal_mode(tmp_path: Path) -> None:
    workspace = init_workspace(tmp_path / "ws")  # not the fixture: its database starts as a migrated copy
    try:
        assert schema_revision(workspace.engine) == SCHEMA_HEAD == head_revision() == "0021"
        with workspace.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert "events" in inspect(workspace.engine).get_table_names()
    finally:
        workspace.close()


def test_same_migrations_run_on_postgres(pg_workspace: Workspace) -> None:
    assert schema_revision(pg_workspace.engine) == SCHEMA_HEAD
    assert {"events", "members", "groups", "report_posts", "enrollments", "keyword_rule_sets", "staff_alerts"} \
        <= set(inspect(pg_workspace.engine).get_table_names())


def test_opening_a_workspace_made_by_an_older_qunflow_upgrades_its_schema(workspace: Workspace) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "qunflow.store:migrations")
    with workspace.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert {"report_posts", "enrollments", "keyword_rule_sets"}.isdisjoint(inspect(workspace.engine).get_table_names())
    again = open_workspace(workspace.home)
    try:
        assert schema_revision(again.engine) == SCHEMA_HEAD
        assert {"report_posts", "enrollments", "keyword_rule_sets"} <= set(inspect(again.engine).get_table_names())
        migrate(again.engine)  # already at head: nothing to do
    finally:
        again.close()


def test_open_reads_settings_file(workspace: Workspace) -> None:
    again = open_workspace(workspace.home)
    assert again.settings.timezone == "Asia/Shanghai"


def test_the_claim_reads_due_timers_from_the_partial_index(any_workspace: Workspace) -> None:
    """0021: the claim's query is answered by ix_enrollments_active_due (finished rows are not in it), and on
    PostgreSQL the table leaves room in each page for HOT updates of the lease."""
    from datetime import datetime

    from qunflow.services.automation import due_query

    engine = any_workspace.engine
    query = due_query(datetime(2026, 3, 1), 500).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: only a usable index is chosen
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {query}"))
            options = conn.exec_driver_sql("SELECT reloptions FROM pg_class WHERE relname = 'enrollments'").scalar()
            assert options == ["fillfactor=70"]
        else:
            plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}"))
    assert "ix_enrollments_active_due" in plan, plan
    assert "ix_enrollments_status_due" not in {i["name"] for i in inspect(engine).get_indexes("enrollments")}
