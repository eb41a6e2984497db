from sqlalchemy import inspect

from qunflow.store.db import SCHEMA_HEAD, head_revision, migrate, schema_revision
from qunflow.workspace import Workspace, open_workspace


def test_init_creates_migrated_database_in_wal_mode(workspace: Workspace) -> None:
    assert schema_revision(workspace.engine) == SCHEMA_HEAD == head_revision() == "0020"
    with workspace.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert "events" in inspect(workspace.engine).get_table_names()


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
