"""What sentry.io really does that a naive client misreads (issue 14; see Sentry's source).

Client-level behaviour with httpx.MockTransport: instant, deterministic, no server.
"""

from __future__ import annotations

import httpx
import pytest

from archiver.errors import AuthError, BadRequestError, EndpointGoneError, ExitCode, NotFoundError
from archiver.sentry.client import SentryClient
from tests.sentry.test_client import TOKEN, Fake, ok, status

TIMEOUT = {"detail": "Query timeout. Please try with a smaller date range or fewer conditions."}


@pytest.mark.parametrize(
    "body", [TIMEOUT, {"detail": "You have hit the Snuba rate limit, try again later."}]
)
def test_a_snuba_timeout_or_rate_limit_400_is_retried_with_backoff(body: object) -> None:
    fake = Fake([status(400, body), status(400, body), ok({"id": "5"})])
    with fake.client() as client:
        assert client.get_issue("acme", 5) == {"id": "5"}
    assert len(fake.requests) == 3
    assert len(fake.slept) == 2  # the client's backoff, not a busy loop


def test_a_transient_400_gives_up_after_the_retry_budget_with_the_servers_text() -> None:
    fake = Fake([status(400, TIMEOUT)] * 3)
    with fake.client(max_retries=2) as client, pytest.raises(BadRequestError) as err:
        client.get_issue("acme", 5)
    assert "Query timeout" in str(err.value)
    assert "gave up after 3 attempts" in str(err.value)
    assert TOKEN not in str(err.value)


def test_any_other_400_stays_fatal_at_once_with_the_servers_text() -> None:
    fake = Fake([status(400, {"detail": "Invalid cursor parameter."})])
    with fake.client() as client, pytest.raises(BadRequestError, match="Invalid cursor"):
        client.get_issue("acme", 5)
    assert len(fake.requests) == 1


def test_a_410_is_its_own_error_naming_the_path_never_a_deletion() -> None:
    fake = Fake([status(410, {"message": "This API no longer exists."})])
    with fake.client() as client, pytest.raises(EndpointGoneError) as err:
        client.get_issue("acme", 5)
    assert not isinstance(err.value, NotFoundError)
    assert "api/0/organizations/acme/issues/5/" in str(err.value)
    assert "410" in str(err.value)
    assert "This API no longer exists." in str(err.value)
    assert err.value.exit_code == ExitCode.API
    assert len(fake.requests) == 1


def test_a_403_with_an_org_auth_token_says_it_cannot_read_events_and_what_to_create() -> None:
    fake = Fake([status(403, {"detail": "You do not have permission to perform this action."})])
    with fake.client() as client, pytest.raises(AuthError) as err:  # TOKEN is sntrys_...
        client.list_projects_page("acme")
    text = str(err.value)
    assert "org:ci" in text
    assert "internal integration" in text
    assert "org:read and event:read" in text
    assert TOKEN not in text
    assert err.value.exit_code == ExitCode.AUTH


def test_a_403_with_a_user_token_names_the_scopes_actually_needed() -> None:
    fake = Fake([status(403, {"detail": "You do not have permission to perform this action."})])
    with fake.client() as client:
        client._token = "sntryu_user-token"
        with pytest.raises(AuthError) as err:
            client.list_projects_page("acme")
    text = str(err.value)
    assert "org:read" in text
    assert "event:read" in text
    assert "project:read only" in text
    assert "sntryu_user-token" not in text


def _region_fake(url: str) -> tuple[list[str], SentryClient]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/api/0/organizations/acme/":
            return httpx.Response(200, json={"links": {"regionUrl": "https://de.sentry.io"}})
        return httpx.Response(200, json=[])

    return seen, SentryClient(url, TOKEN, transport=httpx.MockTransport(handler))


def test_on_sentry_io_the_run_talks_to_the_organizations_region() -> None:
    seen, client = _region_fake("https://sentry.io/")
    with client:
        assert client.use_region("acme") == "https://de.sentry.io/"
        client.list_projects_page("acme")
    assert seen == [
        "https://sentry.io/api/0/organizations/acme/",
        "https://de.sentry.io/api/0/organizations/acme/projects/",
    ]


def test_any_other_host_is_used_as_given_without_asking_for_a_region() -> None:
    seen, client = _region_fake("https://sentry.example.com/")
    with client:
        assert client.use_region("acme") == "https://sentry.example.com/"
        client.list_projects_page("acme")
    assert seen == ["https://sentry.example.com/api/0/organizations/acme/projects/"]
