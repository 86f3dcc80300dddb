"""Helpers shared by the API tests: an app over the test's Atlas, and its client."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from atlas.api import Security, create_app
from atlas.app import Atlas
from atlas.library import Library

TOKEN = "s3cret-token-for-the-tests-0123456789"


def make_client(atlas: Atlas, token: str | None = None, **options: Any) -> TestClient:
    """A client of the app serving ``atlas``; server errors are raised, not answered."""
    app = create_app(Library(atlas), Security(token=token), **options)
    return TestClient(app, base_url="http://127.0.0.1:8000")


def page_client(client: TestClient) -> str:
    """Open a page as a browser would; the CSRF token its scripts send back."""
    response = client.get("/")
    assert response.status_code == 200
    return str(client.cookies["atlas_csrf"])


def events(client: TestClient, url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every server-sent event of a stream that ends by itself."""
    import json

    found = []
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind is not None:
                found.append((kind, json.loads(line.removeprefix("data: "))))
    return found
