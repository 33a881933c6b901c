"""The demo says what it will really archive and what the archive holds after each run;
``datasette-metadata`` prints the command that opens the archive it described."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli
from archiver.operations.demo import plan_of
from archiver.output import plural
from archiver.simulator import SimulatedOrg
from archiver.storage import db


def _archive_counts(db_url: str) -> tuple[int, int, int]:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        counts = tuple(
            int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("projects", "issues", "events")
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


def test_the_plan_is_the_simulators_truth():
    org = SimulatedOrg(seed=42, events=300)
    plan = plan_of(org)
    truth = org.truth(searchable_days=None)  # the demo's simulator does not clip its search
    assert plan.events == len(truth) < 300  # some of the 300 are past the retention
    projects = {pid for pid, _ in truth}
    assert plan.projects == len(projects)
    assert 0 < plan.issues <= len(org.live_issues())


def test_demo_announces_the_truth_and_its_rerun_counts_the_archive(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    first = CliRunner().invoke(cli, ["demo", "--db", db_url, "--events", "300"])
    assert first.exit_code == 0, first.output
    projects, issues, events = _archive_counts(db_url)
    announced = first.output.splitlines()[0]
    expected = (
        f"{plural(projects, 'project')}, {plural(issues, 'issue')} and "
        f"{plural(events, 'event')} to archive"
    )
    assert expected in announced, announced
    assert "300 events" not in announced  # what is simulated is not what can be archived
    holds = (
        f"holds {plural(events, 'event')} of {plural(issues, 'issue')} in "
        f"{plural(projects, 'project')}"
    )
    assert holds in first.output, first.output
    assert f"this run: {plural(events, 'event')} new" in first.output

    again = CliRunner().invoke(cli, ["demo", "--db", db_url, "--events", "300"])
    assert again.exit_code == 0, again.output
    assert holds in again.output, again.output  # not "0 issues": the archive still has them
    assert "this run: 0 events new" in again.output


def test_datasette_metadata_prints_the_real_command(tmp_path):
    archive = tmp_path / "night.db"
    CliRunner().invoke(cli, ["db", "upgrade", "--db", f"sqlite:///{archive}"])
    meta = tmp_path / "meta.json"
    result = CliRunner().invoke(
        cli, ["datasette-metadata", "--db", f"sqlite:///{archive}", "-o", str(meta)]
    )
    assert result.exit_code == 0, result.output
    assert f"datasette {archive} --metadata {meta}" in result.output
    assert "<file.db>" not in result.output


def test_datasette_metadata_says_datasette_needs_sqlite(db_url, tmp_path):
    meta = tmp_path / "meta.json"
    result = CliRunner().invoke(cli, ["datasette-metadata", "--db", db_url, "-o", str(meta)])
    assert result.exit_code == 0, result.output
    if db_url.startswith("postgresql"):
        assert "Datasette opens SQLite files only" in result.output
        assert "datasette " not in result.output.replace("Datasette", "")
    else:
        assert "datasette " in result.output
        assert "SQLite files only" not in result.output
