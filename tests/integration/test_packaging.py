"""A non-editable install (the wheel, as a user gets it) ships its migrations: `prsm db upgrade`
works with no checkout in sight."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_an_installed_wheel_upgrades_its_database(tmp_path):
    pip = [sys.executable, "-m", "pip", "-q"]
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)],
                   cwd=tmp_path, check=True, capture_output=True)  # fmt: skip
    (wheel,) = wheels.glob("prsm-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True
    )
    env = {**os.environ, "PYTHONPATH": str(target), "PRSM_DATA_DIR": str(tmp_path / "data")}
    code = (
        "import sys, prsm; print(prsm.__file__); from prsm.cli import main; sys.exit(main(['db', 'upgrade']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    where, message = done.stdout.splitlines()[0], " ".join(done.stdout.split())
    assert where.startswith(str(target))  # the installed copy, not the checkout
    head = sorted(p.name for p in (REPO / "migrations" / "versions").glob("0*.py"))[-1].split("_")[0]
    assert f"at revision {head}" in message
