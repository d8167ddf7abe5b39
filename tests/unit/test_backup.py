"""`prsm backup` / `prsm restore` on SQLite and the local store (PostgreSQL: tests/integration)."""

from __future__ import annotations

import json

import pytest

from prsm.backup import backup, read_manifest, restore
from prsm.cli import main
from prsm.errors import BackupError, InvalidInput
from prsm.services import Services
from prsm.settings import Settings
from tests import backup_checks
from tests.conftest import MODEL_DIR


@pytest.fixture
def fresh(tmp_path):
    settings = Settings(data_dir=tmp_path / "restored", model_dir=MODEL_DIR, _env_file=None)
    with Services(settings) as services:
        yield services


def test_a_restored_node_has_the_same_balances_sessions_registry_keys_and_store(services, fresh, tmp_path):
    backup_checks.check_a_restored_node_has_the_same_state(services, fresh, tmp_path / "backup")


def test_a_backup_taken_while_queries_and_transfers_run_is_consistent(services, fresh, tmp_path):
    backup_checks.check_a_backup_taken_under_load_is_consistent(services, fresh, tmp_path / "backup")


def test_a_damaged_or_partial_backup_is_refused_and_restore_writes_nothing(services, fresh, tmp_path):
    services.ledger.open_account("alice")
    services.ledger.mint("alice", 5, "funds")
    folder = tmp_path / "backup"
    backup(services, folder)
    db = folder / "prsm.db"
    data = bytearray(db.read_bytes())
    data[-100] ^= 0xFF
    db.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="prsm.db does not match its checksum"):
        restore(fresh, folder)
    assert not (fresh.settings.data_dir / "prsm.db").exists()
    (folder / "manifest.json").unlink()
    with pytest.raises(InvalidInput, match="not a PRSM backup"):
        read_manifest(folder)


def test_restore_refuses_a_data_folder_that_is_not_fresh(services, tmp_path):
    services.ledger.open_account("alice")
    backup(services, tmp_path / "backup")
    with pytest.raises(BackupError, match="fresh data folder.*prsm.db"):
        restore(services, tmp_path / "backup")
    assert services.ledger.balance("alice") == 0  # untouched


def test_backup_refuses_a_folder_with_content_and_leaves_no_partial_one(services, tmp_path, monkeypatch):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        backup(services, target)
    assert (target / "notes.txt").read_text() == "mine"

    def broken(*_args):
        raise OSError("disk full")

    monkeypatch.setattr("prsm.backup._copy_pinned", broken)
    services.store.pin(services.store.put(b"x" * 10))
    with pytest.raises(OSError, match="disk full"):
        backup(services, tmp_path / "new")
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.partial").exists()


def test_prsm_backup_and_restore_commands(services, tmp_path, monkeypatch, capsys):
    services.ledger.open_account("alice")
    services.ledger.mint("alice", 7 * 10**18, "funds")
    monkeypatch.setenv("PRSM_DATA_DIR", str(services.settings.data_dir))
    assert main(["backup", str(tmp_path / "b")]) == 0
    assert "backed up to" in capsys.readouterr().out
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["database"] == "sqlite"
    assert main(["backup", str(tmp_path / "b")]) == 1  # exists: refused, exit 1
    assert "give a new folder" in capsys.readouterr().err
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path / "elsewhere"))
    assert main(["restore", str(tmp_path / "b")]) == 0
    assert "restored onto" in capsys.readouterr().out
    assert main(["ftns", "balance", "alice"]) == 0
    assert "7 FTNS" in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "nothing")]) == 1


def test_the_embedded_chains_journal_is_copied_under_its_lock(services, fresh, tmp_path, monkeypatch):
    import fcntl

    journal = services.settings.data_dir / "chain" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"hash": "0x01", "raw": "0x02"}\n')
    with open(journal, "a+") as holder:  # a process using the chain (a settlement running)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        monkeypatch.setattr("prsm.backup.LOCK_WAIT_S", 0.3)
        with pytest.raises(BackupError, match="another process has used the embedded chain"):
            backup(services, tmp_path / "busy")
        assert not (tmp_path / "busy").exists()
    backup(services, tmp_path / "b")
    restore(fresh, tmp_path / "b")
    assert (fresh.settings.data_dir / "chain" / "journal.jsonl").read_bytes() == journal.read_bytes()
