from prsm.cli import main
from prsm.ftns.amounts import format_ftns


def test_ftns_amounts_print_exactly():
    assert format_ftns(2 * 10**15) == "0.002 FTNS"
    assert format_ftns("1234567890123456789012") == "1234.567890123456789012 FTNS"
    assert format_ftns(0) == "0 FTNS"


def test_query_without_a_running_app_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("PRSM_PORT", "9")  # nothing listens on the discard port
    assert main(["query", "What is entropy?"]) == 1
    assert "not running" in capsys.readouterr().err


def test_db_upgrade_reports_the_revision(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    assert main(["db", "upgrade"]) == 0
    assert "at revision 0002" in capsys.readouterr().out
    assert main(["db", "downgrade"]) == 0
    assert "at revision 0001" in capsys.readouterr().out
    assert main(["db", "downgrade", "--revision", "base"]) == 0
    assert "at revision base" in capsys.readouterr().out
