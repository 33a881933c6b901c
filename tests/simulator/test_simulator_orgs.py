"""``GET /api/0/organizations/``: the organisations a token can see.

The sync names them when ``--org`` names one the server does not know. Sentry's
``OrganizationIndexEndpoint`` lists the token user's organisations with the same fields as an
organisation's details (slug, name, id), paged by ``OffsetPaginator``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from archiver.simulator import SimulatedOrg, SimulatorServer


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatedOrg(seed=3, events=30), token="t") as srv:
        yield srv


def test_the_organization_index_lists_the_served_org(server: SimulatorServer) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer t"}) as client:
        response = client.get("api/0/organizations/")
    assert response.status_code == 200
    body = response.json()
    assert [o["slug"] for o in body] == [server.org.slug]
    assert body[0]["id"] == str(server.org.org_id)
    assert 'rel="next"; results="false"' in response.headers["link"]


def test_the_organization_index_needs_the_token(server: SimulatorServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.get("api/0/organizations/")
    assert response.status_code == 401
