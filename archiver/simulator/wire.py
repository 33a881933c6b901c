"""The request and response values passed between the HTTP layer and the endpoints.

Keeping them plain (no sockets) lets the endpoint logic be exercised without a server and the
server stay ignorant of Sentry's semantics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class ApiRequest:
    method: str
    path: str
    """The raw (still percent-encoded) path."""
    query: list[tuple[str, str]]
    """Decoded query pairs in request order (``+`` is a space, as Django reads it)."""
    headers: dict[str, str]
    """Lower-cased header names."""
    base_url: str
    """``scheme://host[:port]`` used for Link headers and permalinks."""
    params: dict[str, str] = field(default_factory=dict)
    """Route parameters (percent-decoded)."""
    hidden_projects: frozenset[str] = frozenset()
    """Slugs of the projects the caller's token is not a member of (``user_tokens``)."""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter (Django's ``QueryDict.get``)."""
        found = default
        for key, value in self.query:
            if key == name:
                found = value
        return found

    def get_list(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.query)


@dataclass
class ApiResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    issue_id: int | None = None
    """The issue the request addressed, when any (lets data faults target it)."""

    @classmethod
    def json(
        cls, status: int, value: object, headers: list[tuple[str, str]] | None = None
    ) -> ApiResponse:
        return cls(
            status, json.dumps(value, ensure_ascii=False).encode("utf-8"), list(headers or [])
        )

    @classmethod
    def detail(cls, status: int, text: str) -> ApiResponse:
        return cls.json(status, {"detail": text})


class ErrorAnswer(Exception):
    """An HTTP error answer the simulator sends, raised inside an endpoint to send it at once.

    Not :class:`archiver.errors.ApiError` (what the archive's client raises on such an answer):
    this one lives on the server side and never leaves the simulator.
    """

    def __init__(self, status: int, detail: str | dict[str, str]) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.body = detail if not isinstance(detail, str) else {"detail": detail}

    def response(self) -> ApiResponse:
        return ApiResponse.json(self.status, self.body)
