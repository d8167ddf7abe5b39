"""Every notebook in notebooks/ runs, cell by cell, against the live app (nbclient and a real
Jupyter kernel), so a notebook cannot rot when an API changes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def outputs(nb) -> str:
    return "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_against_the_live_app(path, prsm_app, monkeypatch):
    from prsm.services import Services

    with Services.from_settings(prsm_app.settings) as services:  # its own funded key
        key = services.keys.create(f"nb-{path.stem}"[:40], "user")[0]
        services.ledger.mint(f"nb-{path.stem}"[:40], 10**18, f"test-faucet-nb-{path.stem}")
    url = urlparse(prsm_app.base_url)
    monkeypatch.setenv("PRSM_HOST", url.hostname)
    monkeypatch.setenv("PRSM_PORT", str(url.port))
    monkeypatch.setenv("PRSM_API_KEY", key)  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    text = outputs(nb)
    assert "Traceback" not in text
    if path.stem == "quickstart":
        assert "'ok'" in text  # /healthz
        assert "completed" in text  # the session's status
        assert "9" in text.splitlines()[-1]  # the OpenAI client's integral of x^2 from 0 to 3
