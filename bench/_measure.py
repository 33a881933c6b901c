"""What bench_sync.py measures about processes and archives (Linux /proc; run by hand).

Kept apart from the script so that each file stays small: the simulator process, one measured
child process (wall time, peak RSS, CPU of the process and of its descendants, and of the
PostgreSQL server processes working for it), and the size of an archive on disk.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
SAMPLE_S = 0.1  # how often a running process's descendants and server processes are read


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (Linux /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _peak_rss_mb(pid: int) -> int:
    """Peak resident memory of a live process so far (VmHWM; 0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Children of every thread of the process (a pool may be started by any thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


class Simulator:
    """A running simulator process: its URL, and its CPU seconds so far."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


@contextmanager
def simulator(
    events: int, *, latency_ms: float = 0, rate_limits: str = "none", seed: int = 1
) -> Iterator[Simulator]:
    """The simulator in a process of its own, so that the archiver's peak RSS is its alone."""
    args = ["--port", "0", "--seed", str(seed), "--events", str(events), "--token", TOKEN]
    args += ["--latency-ms", str(latency_ms), "--rate-limits", rate_limits]
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver.simulator", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line:
            raise RuntimeError("the simulator did not start")
        yield Simulator(proc, line[0])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class PgBackends:
    """CPU of the local PostgreSQL server processes that work on one database.

    The postmaster is found as the parent of a backend of ``url``; its children whose process
    title names the database (client backends: ``postgres: 15/main: USER DB HOST(PORT) ...``,
    and autovacuum workers) are the server's work for the archive. Each is read every
    ``SAMPLE_S`` while the measured process runs, so the last fraction of a second of a backend
    that exits with it is missed. On a remote server (no /proc entry) nothing is measured.
    """

    def __init__(self, url: str) -> None:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT pg_backend_pid(), current_database()")).one()
                # read while the backend lives: it exits with the connection
                self.postmaster = _parent(int(row[0]))
        finally:
            engine.dispose()
        self.database = str(row[1])
        self.available = self.postmaster is not None
        self._ours: dict[int, bool] = {}
        self._cpu: dict[int, float] = {}
        self._base: dict[int, float] = {}

    def start(self) -> None:
        """Forget earlier runs; the CPU already used by backends alive now is not counted."""
        self._ours.clear()
        self._cpu.clear()
        self._base = {pid: cpu_seconds(pid) for pid in self._matching()}

    def _matching(self) -> list[int]:
        if self.postmaster is None:
            return []
        out = []
        for pid in _children(self.postmaster):
            if pid not in self._ours:
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                self._ours[pid] = self.database in title.replace("\0", " ").split()
            if self._ours[pid]:
                out.append(pid)
        return out

    def sample(self) -> None:
        for pid in self._matching():
            self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu_seconds(pid))

    def seconds(self) -> float | None:
        """CPU seconds of the database's server processes since :meth:`start`."""
        if not self.available:
            return None
        return sum(cpu - self._base.get(pid, 0.0) for pid, cpu in self._cpu.items())


@dataclass
class Measured:
    """One measured process: its own figures, its descendants' apart."""

    seconds: float
    rss_mb: int  # the process's own peak (wait4), its workers apart
    code: int
    cpu_main: float  # CPU seconds of the process itself
    cpu_children: float = 0.0  # of its descendants (the page workers, the forkserver)
    children: int = 0  # descendants seen
    worker_rss_mb: int = 0  # the largest descendant's peak RSS
    cpu_server: float | None = None  # of the PostgreSQL server's processes for its database
    stderr: str = field(default="", repr=False)


def run_measured(
    args: list[str], env: dict[str, str], server: PgBackends | None = None
) -> Measured:
    """Run one child process to its end and measure it (and its descendants, and ``server``).

    Descendants' CPU and peak RSS are sampled every ``SAMPLE_S`` while it runs (the workers are
    children of the forkserver, so wait4 does not count them): on a shared machine CPU time says
    more than wall time about where the work goes.
    """
    if server is not None:
        server.start()
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen: dict[int, float] = {}
    worker_rss = 0
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        todo = _children(proc.pid)
        while todo:
            child = todo.pop()
            seen[child] = max(seen.get(child, 0.0), cpu_seconds(child))
            worker_rss = max(worker_rss, _peak_rss_mb(child))
            todo.extend(_children(child))
        if server is not None:
            server.sample()
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr is not None else ""
    if code != 0:
        sys.stderr.write(err)
    return Measured(
        seconds=seconds,
        rss_mb=usage.ru_maxrss // 1024,
        code=code,
        # wait4's usage is the process's own (plus the few helper processes it reaped itself)
        cpu_main=usage.ru_utime + usage.ru_stime,
        cpu_children=sum(seen.values()),
        children=len(seen),
        worker_rss_mb=worker_rss,
        cpu_server=None if server is None else server.seconds(),
        stderr=err,
    )


def sqlite_size(path: Path) -> tuple[int, dict[str, int]]:
    """(bytes on disk, bytes per table with its indexes) of a SQLite archive nobody has open.

    The WAL is checkpointed into the file first (and truncated), so the file size is the
    archive's, free pages included; the per-table figures come from ``dbstat`` (pages in use).
    """
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = con.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    on_disk = sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )
    return on_disk, {str(name): int(size) for name, size in rows}


def empty_pg(url: str) -> None:
    """Drop everything in a PostgreSQL database's public schema: each run starts empty."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        engine.dispose()


def pg_size(url: str) -> tuple[int, dict[str, int]]:
    """(bytes, bytes per table) of the archive's tables: ``pg_total_relation_size`` (heap,
    TOAST, indexes, free space and visibility maps) of every table in the public schema,
    which bench_sync empties before each backfill, so all of it is the archive's."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')"
                )
            ).all()
    finally:
        engine.dispose()
    tables = {str(name): int(size) for name, size in rows}
    return sum(tables.values()), tables


def raw_json_fetched(baseline_db: Path) -> tuple[int, int]:
    """(events, bytes of their JSON as served) that the baseline script fetched."""
    con = sqlite3.connect(baseline_db)
    try:
        events, json_bytes = con.execute("SELECT events, json_bytes FROM fetched").fetchone()
    finally:
        con.close()
    return int(events), int(json_bytes)
