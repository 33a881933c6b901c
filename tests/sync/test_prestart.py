"""The page workers' fork server starts as the sync command begins (archiver.sync.prestart)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archiver.sync.prestart import WORKER_MODULES, start_fork_server
from tests.helpers import ROOT


def test_no_workers_start_no_fork_server() -> None:
    assert start_fork_server(0) is False


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here"
)
def test_the_sync_command_starts_the_fork_server_before_it_imports_the_engine(
    tmp_path: Path,
) -> None:
    """By the time the command's heavy imports begin, the workers' server is on its way (it
    imports the workers' module meanwhile, in a process of its own)."""
    script = textwrap.dedent(
        """
        import sys
        from multiprocessing import forkserver
        import archiver.sync.prestart as prestart
        started = []
        real = prestart.start_fork_server
        def spy(workers):
            started.append(("archiver.sync.engine" in sys.modules, real(workers)))
            raise SystemExit(0)
        prestart.start_fork_server = spy
        from archiver.cli import cli
        try:
            cli(["sync", "--workers", "2"], prog_name="sentry-archiver")
        except SystemExit:
            pass
        print(started, forkserver._forkserver._preload_modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SENTRY_URL": "http://127.0.0.1:9/"}
    env.update(
        SENTRY_AUTH_TOKEN="t", SENTRY_ORG="o", SENTRY_ARCHIVER_DB=f"sqlite:///{tmp_path}/a.db"
    )
    env.pop("SENTRY_ARCHIVER_CONFIG", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == f"[(False, True)] {WORKER_MODULES}", out.stderr


def test_the_sync_command_begins_the_archives_upgrade_before_it_imports_the_runner(
    tmp_path: Path,
) -> None:
    """A first sync's schema is built while the command imports the rest (the child is forked
    by :func:`archiver.storage.early.begin_upgrade`); the URL is the run's."""
    script = textwrap.dedent(
        """
        import sys
        import archiver.sync.prestart as prestart
        begun = []
        def spy(settings):
            begun.append(("archiver.sync.runner" in sys.modules, settings.db))
            raise SystemExit(0)
        prestart.start_archive_upgrade = spy
        from archiver.cli import cli
        try:
            cli(["sync", "--workers", "0"], prog_name="sentry-archiver")
        except SystemExit:
            pass
        print(begun)
        """
    )
    url = f"sqlite:///{tmp_path}/a.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SENTRY_URL": "http://127.0.0.1:9/"}
    env.update(SENTRY_AUTH_TOKEN="t", SENTRY_ORG="o", SENTRY_ARCHIVER_DB=url)
    env.pop("SENTRY_ARCHIVER_CONFIG", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == str([(False, url)]), out.stderr


def test_without_workers_no_early_upgrade_is_begun(tmp_path: Path) -> None:
    """No fork server with SQLAlchemy imported for the child: prepare upgrades, as before."""
    script = textwrap.dedent(
        """
        import sys
        from archiver.config import Settings
        from archiver.storage import early
        from archiver.sync.prestart import start_archive_upgrade
        begun = []
        for workers in (0, 2):
            url = f"sqlite:///{sys.argv[1]}/w{workers}.db"
            settings = Settings(url="http://127.0.0.1:9/", token="t", org="o", db=url,
                                workers=workers)
            begun.append(start_archive_upgrade(settings))
            early.drop_early()
        print(begun)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.stdout.strip() == "[False, True]", out.stderr
