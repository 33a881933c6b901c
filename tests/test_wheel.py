"""A plain (non-editable) wheel install can create an archive: the migrations ship inside it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_install_runs_db_upgrade(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
    )
    wheels = list(dist.glob("sentry_archiver-*.whl"))
    assert len(wheels) == 1
    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "archiver/_migrations/env.py" in names
    assert any(n.startswith("archiver/_migrations/versions/0001_") for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheels[0])], check=True)

    work = tmp_path / "elsewhere"  # not the source tree: only the installed package is importable
    work.mkdir()
    db_file = work / "new.db"
    exe = env_dir / "bin" / "sentry-archiver"
    out = subprocess.run(
        [str(exe), "db", "upgrade", "--db", f"sqlite:///{db_file}"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "upgraded" in out.stdout
    check = subprocess.run(
        [str(exe), "db", "check", "--db", f"sqlite:///{db_file}"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    located = subprocess.run(
        [str(py), "-c", "import archiver.storage.db as d; print(d.migrations_dir())"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(env_dir) in located
    assert "_migrations" in located
