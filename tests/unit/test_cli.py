from prsm.cli import main
from prsm.ftns.amounts import format_ftns


def test_ftns_amounts_print_exactly():
    assert format_ftns(2 * 10**15) == "0.002 FTNS"
    assert format_ftns("1234567890123456789012") == "1234.567890123456789012 FTNS"
    assert format_ftns(0) == "0 FTNS"


def test_a_setting_that_does_not_parse_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("PRSM_PORT", "eighty")
    assert main(["models", "list"]) == 1
    assert "PRSM_PORT" in capsys.readouterr().err


def test_query_without_a_running_app_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    assert main(["query", "What is entropy?"]) == 1
    assert "no API key" in capsys.readouterr().err  # nothing started here: no key either
    monkeypatch.setenv("PRSM_API_KEY", "prsm_000000000000_" + "x" * 43)
    monkeypatch.setenv("PRSM_PORT", "9")  # nothing listens on the discard port
    assert main(["query", "What is entropy?"]) == 1
    assert "not running" in capsys.readouterr().err


def test_db_upgrade_reports_the_revision(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    from alembic.script import ScriptDirectory

    from prsm.db.engine import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision("head")
    assert main(["db", "upgrade"]) == 0
    assert f"at revision {head.revision}" in capsys.readouterr().out
    assert main(["db", "downgrade"]) == 0
    assert f"at revision {head.down_revision}" in capsys.readouterr().out
    assert main(["db", "downgrade", "--revision", "base"]) == 0
    assert "at revision base" in capsys.readouterr().out


def test_ftns_faucet_transfer_and_safe_retry(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    assert main(["ftns", "faucet", "alice", "12.5"]) == 0
    assert main(["ftns", "faucet", "bob", "0.1"]) == 0
    assert main(["ftns", "transfer", "alice", "2.25", "--to", "bob", "--key", "k1"]) == 0
    assert main(["ftns", "transfer", "alice", "2.25", "--to", "bob", "--key", "k1"]) == 0  # a retry
    capsys.readouterr()
    assert main(["ftns", "balance", "alice"]) == 0
    assert "alice (user): 10.25 FTNS" in capsys.readouterr().out


def test_ftns_bad_amounts_and_overdrafts_exit_1_with_the_reason(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    assert main(["ftns", "faucet", "alice", "1"]) == 0
    cases = [
        (["ftns", "transfer", "alice", "0.0000000000000000001", "--to", "alice"], "more than 18 decimals"),
        (["ftns", "transfer", "alice", "-3", "--to", "bob"], "not a positive decimal"),
        (["ftns", "transfer", "alice", "5", "--to", "nobody"], "no account 'nobody'"),
        (["ftns", "faucet", "bob", "abc"], "not a positive decimal"),
    ]
    for argv, reason in cases:
        assert main(argv) == 1
        assert reason in capsys.readouterr().err
    assert main(["ftns", "faucet", "bob", "1"]) == 0
    assert main(["ftns", "transfer", "alice", "2", "--to", "bob"]) == 1
    assert "holds 1 FTNS, needs 2 FTNS" in capsys.readouterr().err


def test_ftns_settle_links_pays_and_reconciles_on_the_embedded_chain(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    from prsm.services import Services
    from tests.chain_checks import earn

    assert main(["ftns", "settle"]) == 0  # first use deploys the contracts; nothing earned yet
    assert "nothing to settle" in capsys.readouterr().out
    with Services() as services:
        earn(services.ledger, {"bob": 2 * 10**18}, "q")
    assert main(["ftns", "link", "bob", "0x" + "b0" * 20]) == 0
    assert main(["ftns", "settle"]) == 0  # a new process: the chain comes back from its journal
    out = capsys.readouterr().out
    assert "Epoch 1: confirmed, 2 FTNS to 1 payees" in out and "gas" in out
    assert main(["ftns", "reconcile"]) == 0
    assert "ledger and chain agree" in capsys.readouterr().out
    for argv, reason in [
        (["ftns", "link", "bob", "0x12"], "not an Ethereum address"),
        (["ftns", "reserve", "-1"], "not a positive decimal"),
    ]:
        assert main(argv) == 1
        assert reason in capsys.readouterr().err
    assert main(["ftns", "settle", "now"]) == 2  # a usage error, from argparse
    assert "usage: prsm ftns settle" in capsys.readouterr().err


def test_session_export_stores_the_trace_by_cid_once(monkeypatch, tmp_path, capsys, embedder):
    import asyncio
    import json

    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    from prsm.nwtn.route import Router
    from prsm.services import Services
    from prsm.storage.local import LocalStore
    from tests.conftest import orchestrator

    with Services.from_settings(upgrade=True) as services:
        services.registry.ensure_defaults()
        nwtn = orchestrator(services, Router(services.registry, embedder), services.models)
        trace = asyncio.run(nwtn.query("Convert 3 km to m", "alice"))
        store_dir = services.settings.resolved_store_dir
    assert main(["session", "export", trace["session_id"]]) == 0
    cid = capsys.readouterr().out.strip()
    assert main(["session", "export", trace["session_id"]]) == 0 and capsys.readouterr().out.strip() == cid
    stored = json.loads(LocalStore(store_dir).read(cid))
    assert stored == trace
    assert main(["session", "export", "no-such-session"]) == 1
    assert "no session" in capsys.readouterr().err


def test_session_shorthand_and_nested_commands_parse(monkeypatch, tmp_path, capsys):
    from prsm.cli import normalise, parser

    assert normalise(["session", "abc"]) == ["session", "show", "abc"]
    assert normalise(["session", "export", "abc"]) == ["session", "export", "abc"]
    args = parser().parse_args(["ftns", "transfer", "alice", "2", "--to", "bob"])
    assert (args.account, args.amount, args.to) == ("alice", "2", "bob")
    assert main(["ftns", "transfer", "alice", "2"]) == 2  # --to is required
    assert "--to" in capsys.readouterr().err
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PRSM_API_KEY", "prsm_000000000000_" + "x" * 43)
    monkeypatch.setenv("PRSM_PORT", "9")
    assert main(["session", "some-id"]) == 1  # parsed as `show`; nothing runs at :9
    assert "not running" in capsys.readouterr().err


def test_store_put_get_folder_and_gc(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "weights"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "model.bin").write_bytes(b"\1" * 300_000)
    assert main(["store", "put", str(folder)]) == 0
    cid = capsys.readouterr().out.strip()
    assert main(["store", "get", cid]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert main(["store", "get", cid, "-o", str(tmp_path / "copy")]) == 0
    assert (tmp_path / "copy" / "sub" / "model.bin").read_bytes() == b"\1" * 300_000
    assert main(["store", "put", str(tmp_path / "copy" / "sub" / "model.bin"), "--no-pin"]) == 0
    assert main(["store", "gc"]) == 0
    assert "removed 0 blocks" in capsys.readouterr().out  # the file's blocks are the folder's too
    assert main(["store", "put", str(tmp_path / "nowhere")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_keys_are_made_listed_rotated_and_revoked_from_the_cli(monkeypatch, tmp_path, capsys):
    from prsm.services import Services

    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    assert main(["keys", "create", "carol", "--role", "owner", "--expires", "30d", "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    with Services() as services:
        principal = services.keys.authenticate(token)
        assert (principal.account, principal.role) == ("carol", "owner")
    assert main(["keys", "list", "carol"]) == 0
    listed = capsys.readouterr().out
    assert principal.key_id in listed and token not in listed  # the secret is never shown again
    assert main(["keys", "rotate", principal.key_id, "--grace", "0m"]) == 0
    new_token = capsys.readouterr().out.strip().splitlines()[-1]
    with Services() as services:
        services.keys.authenticate(new_token)
        new_id = services.keys.authenticate(new_token).key_id
    assert main(["keys", "revoke", new_id]) == 0
    assert main(["keys", "create", "bad account!"]) == 1
    assert "not an account id" in capsys.readouterr().err
    assert main(["keys", "create", "carol", "--expires", "soon"]) == 1
    assert main(["keys", "create", "carol", "--role", "god"]) == 2


def test_keys_create_with_limits_and_the_audit_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    assert main(["keys", "create", "lab", "--rpm", "60", "--tpm", "20000", "--concurrency", "4",
                 "--budget", "2.5", "--budget-period", "24h"]) == 0  # fmt: skip
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("prsm_")
    from prsm.services import Services

    with Services.from_settings(None) as services:
        limits = services.keys.authenticate(token).limits
    assert (limits.rpm, limits.tpm, limits.concurrent, limits.budget, limits.budget_period_s) == (
        60, 20000, 4, 25 * 10**17, 86400,
    )  # fmt: skip
    assert main(["keys", "list", "lab"]) == 0
    assert "60 rpm" in capsys.readouterr().out
    assert main(["keys", "create", "lab", "--budget", "lots"]) == 1
    assert "--budget 'lots'" in capsys.readouterr().err
    assert main(["keys", "create", "lab", "--rpm", "-1"]) == 1
    assert "rpm" in capsys.readouterr().err
    assert main(["audit", "--json"]) == 0  # nothing recorded by the CLI itself: an empty trail
    assert capsys.readouterr().out == ""


def test_prsm_distill_help_and_bad_arguments_exit_cleanly(capsys):
    from prsm.cli import main

    assert main(["distill", "--help"]) == 0
    assert "--teacher" in capsys.readouterr().out
    assert main(["distill", "--teacher", "smollm2-135m-instruct", "--steps", "-1"]) == 1
    assert "error: --steps: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert main(["distill", "--steps", "3"]) == 2  # --teacher missing: argparse's usage error


def test_loop_canary_refuses_a_baseline_outside_zero_to_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    argv = ["loop", "canary", "student", "--cluster", "c1", "--incumbent", "teacher", "--baseline"]
    assert main([*argv, "1.5"]) == 1
    assert "baseline" in capsys.readouterr().err
    assert main(["loop", "status"]) == 0
    assert "baseline" in capsys.readouterr().out
