"""Who may use ``atlas serve``: the token, the page session cookie, CSRF, other sites."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from _api import TOKEN, make_client, page_client
from _feedback import add_item, feedback_rows
from atlas.api import is_loopback


@pytest.fixture
def guarded(atlas):
    with make_client(atlas, token=TOKEN) as opened:
        yield opened


def test_loopback_addresses_need_no_token_others_do():
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"))


def test_a_missing_or_wrong_token_is_refused_with_json(atlas, guarded):
    item = add_item(atlas.engine, "Alien")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = guarded.get("/api/v1/media", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"].startswith("a valid API token is required")
        posted = guarded.post(
            f"/api/v1/media/{item}/feedback", json={"tags": ["x"]}, headers=headers
        )
        assert posted.status_code == 401
    assert guarded.get("/api/v1/openapi.json").status_code == 401
    assert feedback_rows(atlas.engine) == []

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/api/v1/media", headers=bearer).json()["total"] == 1
    posted = guarded.post(f"/api/v1/media/{item}/feedback", json={"tags": ["x"]}, headers=bearer)
    assert posted.status_code == 200
    assert len(feedback_rows(atlas.engine)) == 1


def test_pages_sign_in_with_the_token_into_an_http_only_same_site_cookie(atlas, guarded):
    item = add_item(atlas.engine, "Alien", auto=["Space"])
    first = guarded.get(f"/media/{item}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"/login?next=/media/{item}"
    assert guarded.get("/login").status_code == 200

    wrong = guarded.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    signed = guarded.post(
        "/login", data={"token": TOKEN, "next": f"/media/{item}"}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == f"/media/{item}"
    cookie = next(
        value
        for name, value in signed.headers.multi_items()
        if name == "set-cookie" and value.startswith("atlas_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = guarded.get(f"/media/{item}")
    assert page.status_code == 200 and "Alien" in page.text

    # Signed in, a page's edit needs the page's CSRF token as well.
    csrf = guarded.cookies["atlas_csrf"]
    assert f'<meta name="csrf-token" content="{csrf}">' in page.text
    url = f"/api/v1/media/{item}/feedback"
    refused = guarded.post(url, json={"tags": ["Horror"]})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    wrong_csrf = guarded.post(url, json={"tags": ["Horror"]}, headers={"X-CSRF-Token": "x"})
    assert wrong_csrf.status_code == 403
    assert feedback_rows(atlas.engine) == []
    done = guarded.post(url, json={"tags": ["Horror"]}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200
    assert len(feedback_rows(atlas.engine)) == 1


def test_sign_in_never_sends_the_browser_to_another_site(guarded):
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = guarded.post(
            "/login", data={"token": TOKEN, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/"


def test_cross_site_posts_are_refused_even_on_loopback(atlas):
    item = add_item(atlas.engine, "Alien", auto=["Space"])
    url = f"/api/v1/media/{item}/feedback"
    with make_client(atlas) as client:
        # A form on another site posting to the local server (no CSRF token, no JSON).
        form = client.post(url, data={"tags": "pwned"}, headers={"Origin": "https://evil.example"})
        assert form.status_code == 403 and form.json()["error"] == "cross-site request refused"
        fetched = client.post(
            url, json={"tags": ["pwned"]}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert fetched.status_code == 403
        plain = client.post(
            url, content=b'{"tags": ["pwned"]}', headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415
        # A browser that opened Atlas's pages holds the CSRF cookie: a post without the
        # header (what a cross-site form would send if the cookie went along) is refused.
        csrf = page_client(client)
        assert client.post(url, json={"tags": ["pwned"]}).status_code == 403
        assert feedback_rows(atlas.engine) == []
        same_site = client.post(
            url,
            json={"tags": ["Space", "Horror"]},
            headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8000"},
        )
        assert same_site.status_code == 200
    assert len(feedback_rows(atlas.engine)) == 1


def test_serve_refuses_a_short_token_and_a_bad_port(home, database_url):
    from atlas.cli.app import app

    runner = CliRunner()
    env = {"ATLAS_HOME": str(home), "ATLAS_DATABASE_URL": database_url}
    short = runner.invoke(
        app, ["serve", "--host", "0.0.0.0"], env={**env, "ATLAS_API_TOKEN": "abc"}
    )
    assert short.exit_code == 2
    assert "ATLAS_API_TOKEN is too short" in short.stderr
    port = runner.invoke(app, ["serve", "--port", "70000"], env=env)
    assert port.exit_code == 2 and "--port must be between 1 and 65535" in port.stderr
    threads = runner.invoke(app, ["serve", "--threads", "0"], env=env)
    assert threads.exit_code == 2 and "--threads must be between 1 and 256" in threads.stderr
    for processes in ("0", "65"):
        refused = runner.invoke(app, ["serve", "--processes", processes], env=env)
        assert refused.exit_code == 2
        assert "--processes must be between 1 and 64" in refused.stderr
