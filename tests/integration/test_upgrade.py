"""Upgrades: the Serve application builder migrates the database before it makes any deployment,
so a `serve deploy` of new code never serves on an old schema (benchmarks/redeploy.py measures
the rollout itself under load)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from prsm.db.engine import alembic_config, current_revision, make_engine, upgrade
from prsm.settings import Settings
from tests.conftest import MODEL_DIR


def test_build_app_migrates_the_database_before_any_deployment_is_made(tmp_path):
    from deployments.app import build_app

    settings = Settings(data_dir=tmp_path / "data", model_dir=MODEL_DIR, _env_file=None)
    url = settings.resolved_database_url
    upgrade(url, "0011")  # the database of the release before scheduled jobs
    assert "schedules" not in inspect(make_engine(url)).get_table_names()
    app = build_app(settings.portable())
    assert current_revision(url) == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert "schedules" in inspect(make_engine(url)).get_table_names()
    assert app is not None  # the application, bound: nothing has been deployed yet
