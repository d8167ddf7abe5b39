"""Backup and restore rules every database backend must hold (SQLite in unit, PostgreSQL in
integration): a restored node has the same state, and a backup taken under load is consistent."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from sqlalchemy import select

from prsm.backup import backup, restore
from prsm.db.models import LedgerAccount, LedgerEntry, QuerySession
from prsm.ftns.ledger import sum_of_entries_per_transaction
from prsm.keys import provision
from prsm.nwtn.route import Router
from prsm.registry import DEFAULT_MODEL_ID
from prsm.services import Services
from prsm.types import KeyRole
from tests.conftest import orchestrator
from tests.fakes import EchoLM, HashingEmbedder


def node(services: Services):
    """NWTN over these services, the language model a fake; `alice` holds 1 FTNS."""
    services.registry.ensure_defaults()
    services.models.host(DEFAULT_MODEL_ID, EchoLM())
    return orchestrator(services, Router(services.registry, HashingEmbedder()), services.models)


def consistent(services: Services) -> None:
    """Double entry holds: each transaction sums to zero, each balance is its entries' sum,
    and all balances sum to zero (issuance holds the minus of what was minted)."""
    assert not {t: s for t, s in sum_of_entries_per_transaction(services.ledger).items() if s}
    accounts, entries = LedgerAccount.__table__, LedgerEntry.__table__
    with services.db.engine.connect() as conn:
        balances = dict(conn.execute(select(accounts.c.id, accounts.c.balance)).all())
        sums: dict[str, int] = {}
        for account, amount in conn.execute(select(entries.c.account_id, entries.c.amount)):
            sums[account] = sums.get(account, 0) + amount
    assert balances == {a: sums.get(a, 0) for a in balances}
    assert sum(balances.values()) == 0


def state(services: Services) -> dict:
    """What a user and an operator see: balances, every session's trace, cards, keys."""
    with services.db.engine.connect() as conn:
        accounts = sorted(conn.execute(select(LedgerAccount.__table__.c.id)).scalars())
        sessions = sorted(conn.execute(select(QuerySession.__table__.c.id)).scalars())
    return {
        "balances": {a: services.ledger.balance(a) for a in accounts},
        "traces": {s: services.sessions.trace(s) for s in sessions},
        "cards": sorted(repr(c) for c in services.registry.list()),
        "keys": sorted(str(k.public()) for k in services.keys.list(None)),
    }


def check_a_restored_node_has_the_same_state(services: Services, fresh: Services, folder: Path) -> None:
    nwtn = node(services)
    for prompt in ("Convert 5 km to miles", "Convert 2 kg to lb. In one sentence, what is entropy?"):
        assert asyncio.run(nwtn.query(prompt, "alice"))["status"] == "completed"
    token, _ = services.keys.create("alice", KeyRole.USER, name="alice's laptop")
    provision(services.keys, services.settings.keys_file, services.settings.operator_account)
    services.sealer  # noqa: B018 (makes secret.key, as the first sealed credential would)
    cid = services.store.put(b"a dataset someone uploaded " * 20000)
    services.store.pin(cid)
    before = state(services)

    done = backup(services, folder)
    assert done.pins >= 1 and done.tables["sessions"] == 2 and done.blocks >= 2
    assert (folder / "manifest.json").is_file() and (folder / "keys.json").stat().st_mode & 0o777 == 0o600

    restored = restore(fresh, folder)
    assert restored.tables == done.tables
    assert state(fresh) == before
    consistent(fresh)
    assert fresh.store.read(cid) == b"a dataset someone uploaded " * 20000  # verified block by block
    assert fresh.keys.authenticate(token).account == "alice"
    settings, new = services.settings, fresh.settings
    for name in ("keys.json", "secret.key"):
        assert (new.data_dir / name).read_bytes() == (settings.data_dir / name).read_bytes()


def check_a_backup_taken_under_load_is_consistent(services: Services, fresh: Services, folder: Path) -> None:
    """Transfers and queries run while the backup is taken: the restored ledger balances, and
    holds every transfer that was done before the backup began."""
    nwtn = node(services)
    ledger = services.ledger
    ledger.open_account("bob")
    ledger.mint("alice", 10**6, "load-funds")
    stop, done = threading.Event(), []

    def transfers() -> None:
        while not stop.is_set():
            ledger.transfer("alice", "bob", 1, f"load-{len(done)}-{threading.get_ident()}")
            done.append(1)

    def queries() -> None:
        while not stop.is_set():
            asyncio.run(nwtn.query("Convert 7 km to miles", "alice"))

    workers = [threading.Thread(target=transfers) for _ in range(3)] + [threading.Thread(target=queries)]
    for w in workers:
        w.start()
    try:
        while len(done) < 50:
            time.sleep(0.01)
        before = len(done)
        backup(services, folder)
    finally:
        stop.set()
        for w in workers:
            w.join()
    restore(fresh, folder)
    consistent(fresh)
    assert before <= fresh.ledger.balance("bob") <= len(done)
