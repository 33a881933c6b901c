"""The simulator behaves like sentry.io where a naive client would break (issue 14)."""

from __future__ import annotations

import httpx

from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.config import FaultConfig, SimulatorConfig


def test_query_timeout_faults_answer_snubas_400_on_issue_search_and_event_lists_only() -> None:
    org = SimulatedOrg(seed=3, events=200)
    issue = org.live_issues()[0]
    config = SimulatorConfig(faults=FaultConfig(seed=1, query_timeout_rate=1.0))
    with SimulatorServer(org, config=config) as srv:
        headers = {"Authorization": "Bearer sim-token"}
        base = f"{srv.url}api/0/organizations/{org.slug}/"
        for path in ("issues/", f"issues/{issue.id}/events/"):
            response = httpx.get(base + path, params={"query": ""}, headers=headers)
            assert response.status_code == 400
            assert "Query timeout" in response.json()["detail"]
        assert httpx.get(base + "projects/", headers=headers).status_code == 200
        assert httpx.get(base + f"issues/{issue.id}/", headers=headers).status_code == 200
