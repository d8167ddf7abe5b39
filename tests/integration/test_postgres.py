"""The same migration checks as on SQLite, on a real PostgreSQL server."""

from tests.migration_checks import (
    assert_no_drift,
    assert_token_amounts_are_exact,
    assert_upgrade_downgrade_upgrade,
)


def test_postgres_upgrade_downgrade_upgrade(postgres_url):
    assert_upgrade_downgrade_upgrade(postgres_url)


def test_postgres_models_and_migrations_do_not_drift(postgres_url):
    assert_no_drift(postgres_url)


def test_postgres_keeps_token_amounts_exact(postgres_url):
    assert_token_amounts_are_exact(postgres_url)


def test_the_sub_task_cache_stores_and_answers_on_postgres(postgres_url, tmp_path):
    """The cache's writes ride in the group committer's batch (INSERT ... ON CONFLICT DO NOTHING
    in PostgreSQL's dialect): an answer stored, found again, and a second store of it ignored."""
    import asyncio

    from prsm.nwtn.route import Router
    from prsm.registry import DEFAULT_MODEL_ID
    from prsm.services import Services
    from prsm.settings import Settings
    from tests.conftest import MODEL_DIR, orchestrator
    from tests.fakes import EchoLM, HashingEmbedder
    from tests.services import fresh_database

    settings = Settings(data_dir=tmp_path, model_dir=MODEL_DIR, database_url=fresh_database(postgres_url),
                        _env_file=None)  # fmt: skip
    with Services.from_settings(settings, upgrade=True) as services:
        services.registry.ensure_defaults()
        services.models.host(DEFAULT_MODEL_ID, EchoLM())
        nwtn = orchestrator(services, Router(services.registry, HashingEmbedder()), services.models)

        async def twice_at_once_then_again():
            together = await asyncio.gather(
                *(nwtn.query("Explain what entropy measures.", "alice") for _ in range(2))
            )
            return together, await nwtn.query("Explain what entropy measures.", "alice")

        together, again = asyncio.run(twice_at_once_then_again())
        assert [t["tasks"][0]["cached"] for t in together] == [False, False]  # both stored: one kept
        assert again["tasks"][0]["cached"] is True
        assert again["tasks"][0]["result"] == together[0]["tasks"][0]["result"]
