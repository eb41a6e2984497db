from sqlalchemy import inspect

from qunflow.store.db import schema_revision
from qunflow.workspace import Workspace, open_workspace


def test_init_creates_migrated_database_in_wal_mode(workspace: Workspace) -> None:
    assert schema_revision(workspace.engine) == "0001"
    with workspace.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert "events" in inspect(workspace.engine).get_table_names()


def test_same_migrations_run_on_postgres(pg_workspace: Workspace) -> None:
    assert schema_revision(pg_workspace.engine) == "0001"
    assert {"events", "members", "groups"} <= set(inspect(pg_workspace.engine).get_table_names())


def test_open_reads_settings_file(workspace: Workspace) -> None:
    again = open_workspace(workspace.home)
    assert again.settings.timezone == "Asia/Shanghai"
