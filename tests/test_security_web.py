"""Issue 15, abuse: login throttling, the two-person rule for roles, the access log, security
headers and the same-origin check, each against a real server over real HTTP (and the access
log against a real ``openlfr serve`` process and what it writes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from service_support import PASSWORD, LiveServer, service_store, token_for, user_name
from sqlalchemy import select
from typer.testing import CliRunner

from openlfr.api import create_app, throttle
from openlfr.api.auth import create_user
from openlfr.api.roles import Role
from openlfr.cli import app as cli
from openlfr.governance.audit import verify_chain
from openlfr.store.db import open_store
from openlfr.store.models import AuditEntry, User, utcnow


@pytest.fixture
def server(database_url: str):  # type: ignore[no-untyped-def]
    store = service_store(database_url)
    with LiveServer(create_app(store, poll_alerts=False)) as live:
        yield live, store


def _login(url: str, name: str, password: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/auth/login", json={"name": name, "password": password}, headers=headers
    )


def _actions(store) -> list[str]:  # type: ignore[no-untyped-def]
    with store() as session:
        return [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# --- finding 4: brute force, and flooding the audit chain through refused logins --------------


def test_an_account_is_locked_after_five_failures_even_for_the_right_password(server) -> None:  # type: ignore[no-untyped-def]
    live, store = server
    name = user_name(Role.REVIEWER)
    answers = [_login(live.url, name, f"guess {i}").status_code for i in range(5)]
    assert answers == [401, 401, 401, 401, 429]
    right = _login(live.url, name, PASSWORD)
    assert right.status_code == 429, "the right password got in during a lockout"
    assert 0 < int(right.headers["Retry-After"]) <= 60
    # the chain holds one summarising entry, no refusal one by one; the counts are kept
    assert _actions(store) == ["login-lockout"]
    with store() as session:
        lockout = session.scalar(select(AuditEntry))
        assert lockout.object == f"account:{name}:lockout=1"
        assert throttle.counters(session) == {
            "login-lockout": 1,
            "login-refused": 5,
            "login-throttled": 1,
        }
        assert verify_chain(session).ok
    # another account from elsewhere is not affected by this one's lock
    assert _login(live.url, user_name(Role.AUDITOR), PASSWORD).status_code == 200


def test_the_count_is_shared_by_every_server_process_on_the_store(database_url) -> None:  # type: ignore[no-untyped-def]
    # two servers on one store, as behind a load balancer: guesses spread over both still lock
    store = service_store(database_url)
    name = user_name(Role.REVIEWER)
    with (
        LiveServer(create_app(store, poll_alerts=False)) as one,
        LiveServer(create_app(store, poll_alerts=False)) as two,
    ):
        answers = [_login((one, two)[i % 2].url, name, "guess").status_code for i in range(5)]
        assert answers == [401, 401, 401, 401, 429]
        assert _login(one.url, name, PASSWORD).status_code == 429
        assert _login(two.url, name, PASSWORD).status_code == 429


def test_names_nobody_has_are_throttled_alike_and_never_reach_the_chain(server) -> None:  # type: ignore[no-untyped-def]
    live, store = server
    answers = [_login(live.url, "mallory-was-here", "x").status_code for _ in range(5)]
    assert answers[-1] == 429  # same answer as for a real account: no probing for names
    for i in range(3):
        _login(live.url, f"flood-{i}", "x")
    assert _actions(store) == []  # no entry at all, let alone one per made-up name
    with store() as session:
        assert throttle.counters(session)["login-refused"] == 8


def test_an_address_is_locked_after_its_budget_of_failures_across_accounts(
    server, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    live, store = server
    monkeypatch.setenv("OPENLFR_LOGIN_ADDRESS_LIMIT", "8")  # 20 by default; fewer argon2 runs
    for i in range(7):
        assert _login(live.url, f"spray-{i}", "x").status_code == 401
    assert _login(live.url, "spray-last", "x").status_code == 429
    locked = _login(live.url, user_name(Role.AUDITOR), PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert _actions(store) == ["login-lockout"]  # the address's, named by its address
    admin = {"Authorization": f"Bearer {token_for(store, Role.ADMIN)}"}
    state = httpx.get(f"{live.url}/api/users/login-throttle", headers=admin).json()
    assert [(lock["kind"], lock["label"]) for lock in state["locks"]] == [("address", "127.0.0.1")]


def test_lockouts_back_off_exponentially_and_a_quiet_quarter_hour_forgets(database_url) -> None:  # type: ignore[no-untyped-def]
    store = service_store(database_url)
    who = (throttle.Subject("account", "reviewer"),)
    start = utcnow()
    with store() as session:
        waits = [throttle.record_failure(session, who, start) for _ in range(5)]
        assert waits == [0, 0, 0, 0, 60]
        # each failure after a lock ends locks again, twice as long, up to the cap
        at, doubled = start, []
        for _ in range(6):
            at += timedelta(seconds=throttle.retry_after(session, who, at))
            doubled.append(throttle.record_failure(session, who, at))
        assert doubled == [120, 240, 480, 960, 1800, 1800]
        # 15 quiet minutes after the last lock ends: a fresh budget of five
        at += timedelta(seconds=1800) + throttle.QUIET + timedelta(seconds=1)
        assert throttle.record_failure(session, who, at) == 0
        session.commit()


# --- finding 5: an admin reaching personal data through accounts --------------------------------


def test_an_admin_alone_cannot_make_or_become_a_reviewer(server) -> None:  # type: ignore[no-untyped-def]
    live, store = server
    with store() as session:
        create_user(session, "admin2", Role.ADMIN, PASSWORD)
        session.commit()
    admin = {"Authorization": f"Bearer {token_for(store, Role.ADMIN)}"}
    users = f"{live.url}/api/users"
    # a password of the admin's choosing for a new account is refused outright
    chosen = {"name": "sock", "role": "reviewer", "password": "admin knows this"}
    assert httpx.post(users, headers=admin, json=chosen).status_code == 422
    made = httpx.post(users, headers=admin, json={"name": "sock", "role": "reviewer"})
    assert made.status_code == 201 and made.json()["active"] is False
    sock = made.json()["id"]
    # enabling it is a request too, not a way around the approval
    assert (
        httpx.patch(f"{users}/{sock}", headers=admin, json={"active": True}).json()["active"]
        is False
    )
    assert httpx.post(f"{users}/{sock}/approve", headers=admin).status_code == 403
    with store() as session:
        own_id = session.scalar(select(User.id).where(User.name == user_name(Role.ADMIN)))
    itself = httpx.patch(f"{users}/{own_id}", headers=admin, json={"role": "reviewer"})
    assert itself.status_code == 403
    with store() as session:
        assert session.get(User, own_id).role == "admin"
    # the second admin approves: the code goes to the approver, the password to the holder
    second = _login(live.url, "admin2", PASSWORD).json()["token"]
    approved = httpx.post(
        f"{users}/{sock}/approve", headers={"Authorization": f"Bearer {second}"}
    ).json()
    code = approved["enrolment_code"]
    assert approved["role"] == "reviewer" and approved["pending_role"] is None
    enrol = {"name": "sock", "code": "a guess", "password": "the holder's own"}
    assert httpx.post(f"{live.url}/api/auth/enrol", json=enrol).status_code == 401
    enrol["code"] = code
    assert httpx.post(f"{live.url}/api/auth/enrol", json=enrol).status_code == 200
    assert httpx.post(f"{live.url}/api/auth/enrol", json=enrol).status_code == 401  # used up
    assert _login(live.url, "sock", "the holder's own").json()["user"]["role"] == "reviewer"
    actions = _actions(store)
    assert actions.count("user-request") == 2 and "user-approve" in actions
    assert "user-enrol" in actions


def test_the_cli_grants_alone_only_to_bootstrap_two_admins_or_by_breaking_glass(
    database_url,
) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def add(name: str, role: str, *flags: str):  # type: ignore[no-untyped-def]
        args = ["user", "add", name, "--role", role, "--password-stdin", *flags]
        return runner.invoke(cli, args, input="a long enough password\n")

    assert add("chief", "admin").exit_code == 0
    assert add("deputy", "admin").exit_code == 0
    third = add("third", "admin")
    assert third.exit_code == 0 and "requested" in third.output
    assert add("rev", "reviewer").exit_code == 0
    assert add("urgent", "reviewer", "--break-glass").exit_code == 0
    store = open_store(database_url)
    with store() as session:
        state = {u.name: (u.active, u.pending_role) for u in session.scalars(select(User))}
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert state == {
        "chief": (True, None),
        "deputy": (True, None),
        "third": (False, "admin"),
        "rev": (False, "reviewer"),
        "urgent": (True, None),
    }
    assert actions == [
        "user-add",
        "user-add",
        "user-request",
        "user-request",
        "user-add-break-glass",
    ]
    # the host's operator lifts a lockout; that is audited too
    with store() as session:
        for _ in range(throttle.ACCOUNT_LIMIT):
            throttle.record_failure(session, (throttle.Subject("account", "chief"),))
        session.commit()
        assert [lock.label for lock in throttle.locks(session)] == ["chief"]
    unlocked = runner.invoke(cli, ["user", "unlock", "chief"])
    assert unlocked.exit_code == 0 and "lock lifted" in unlocked.output
    with store() as session:
        assert throttle.locks(session) == []
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (last.action, last.object) == ("login-unlock", "account:chief")


# --- finding 10 and the CSRF half of 12 -------------------------------------------------------


def test_security_headers_on_the_console_its_script_the_docs_and_the_api(server) -> None:  # type: ignore[no-untyped-def]
    live, _ = server
    for path in ("/", "/static/app.js", "/docs", "/openapi.json", "/api/auth/me", "/nowhere"):
        headers = httpx.get(f"{live.url}{path}").headers
        csp = headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
    assert httpx.get(f"{live.url}/api/auth/me").headers["Cache-Control"] == "no-store"
    # /docs is served from this machine: nothing fetched from elsewhere
    page = httpx.get(f"{live.url}/docs").text
    assert "http" not in page.split("<body>")[0] and "/docs-assets/swagger-ui-bundle.js" in page
    assert httpx.get(f"{live.url}/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_a_cookie_write_from_a_foreign_origin_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    live, store = server
    with httpx.Client(base_url=live.url) as browser:
        login = browser.post(
            "/api/auth/login",
            json={"name": user_name(Role.WATCHLIST_MANAGER), "password": PASSWORD},
            headers={"Origin": live.url},
        )
        assert login.status_code == 200 and "openlfr_session" in browser.cookies
        body = {"name": "planted"}
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Referer": "http://evil.example/page"},
            {},  # neither: a browser always sends Origin on a write, so this is forged
        ):
            refused = browser.post("/api/watchlists", json=body, headers=headers)
            assert refused.status_code == 403, headers
            assert "cross-site" in refused.json()["detail"]
        assert browser.get("/api/watchlists").json() == []  # nothing was written
        # a login posted from a foreign page is refused too (no logging a browser in)
        foreign_login = browser.post(
            "/api/auth/login",
            json={"name": "x", "password": "y"},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign_login.status_code == 403
        # a non-browser client logging in again with its cookie jar is not a cross-site write
        again = {"name": user_name(Role.WATCHLIST_MANAGER), "password": PASSWORD}
        assert browser.post("/api/auth/login", json=again).status_code == 200
        same = browser.post("/api/watchlists", json=body, headers={"Origin": live.url})
        assert same.status_code == 201
        same_referer = {"Referer": f"{live.url}/"}
        other = browser.post("/api/watchlists", json={"name": "second"}, headers=same_referer)
        assert other.status_code == 201
    # a bearer token is not a browser's ambient credential: no Origin rule applies
    token = token_for(store, Role.WATCHLIST_MANAGER)
    bearer = httpx.post(
        f"{live.url}/api/watchlists",
        json={"name": "by-token"},
        headers={"Authorization": f"Bearer {token}", "Origin": "http://tool.example"},
    )
    assert bearer.status_code == 201


# --- finding 9: subject names in the access log, with a real `openlfr serve` ------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_logs_route_templates_and_never_a_name_from_a_path_or_query(
    database_url, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    store = service_store(database_url)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENLFR_LOGIN_ADDRESS_LIMIT": "4"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openlfr.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "openlfr serve did not start"
                time.sleep(0.2)
        manager = {"Authorization": f"Bearer {token_for(store, Role.WATCHLIST_MANAGER)}"}
        httpx.post(f"{url}/api/watchlists", headers=manager, json={"name": "wl1"})
        images = f"{url}/api/watchlists/wl1/subjects/alanturing/images"
        files = {"file": ("alanturing.jpg", b"not an image", "image/jpeg")}
        assert httpx.post(images, headers=manager, files=files).status_code in (404, 422)
        httpx.get(f"{url}/api/watchlists/wl1?note=alanturing", headers=manager)
        httpx.get(f"{url}/no/such/alanturing")
        # X-Forwarded-For from an untrusted peer is not believed: the address still locks
        for i in range(4):  # the limit set for this server below
            spoof = {"X-Forwarded-For": f"10.0.0.{i}"}
            last = _login(url, f"spray-{i}", "x", **spoof)
        assert last.status_code == 429
        template = '"POST /api/watchlists/{name}/subjects/{subject}/images"'
        deadline = time.monotonic() + 30
        while template not in log.read_text() or '"GET -"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "alanturing" not in text and "note=" not in text
    assert "/api/auth/login" in text and " 429 " in text
    with store() as session:
        locks = throttle.locks(session)
        assert [(lock.kind, lock.label) for lock in locks] == [("address", "127.0.0.1")]


# --- the console and /docs under the CSP, and the accounts screens ------------------------------


@pytest.mark.slow
def test_console_accounts_and_docs_work_under_the_csp(server) -> None:  # type: ignore[no-untyped-def]
    from test_console import ARGS, CHROMIUM

    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}")
    live, store = server
    with store() as session:
        create_user(session, "admin2", Role.ADMIN, PASSWORD)
        session.commit()
    violations: list[str] = []

    def watch(page) -> None:  # type: ignore[no-untyped-def]
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def login(page, name: str, password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
        page.fill("#login-form [name=name]", name)
        page.fill("#login-form [name=password]", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#who:not([hidden])")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        watch(page)
        # Swagger UI renders the operations from local files, its inline script allowed by hash
        page.goto(f"{live.url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        page.goto(live.url)
        login(page, user_name(Role.ADMIN))
        page.keyboard.press("Alt+u")
        page.fill("#user-form [name=name]", "newrev")
        page.click("#user-form button[type=submit]")
        page.wait_for_selector("#users td:has-text('reviewer (asked by admin)')")
        assert page.locator("#users button[data-approve]").count() == 0  # not by the asker
        page.click("#logout")
        page.wait_for_selector("#login-form:visible")
        login(page, "admin2")
        page.keyboard.press("Alt+u")
        page.click("#users button[data-approve]")
        page.wait_for_selector("#enrolment-code:not([hidden])")
        code = page.inner_text("#enrolment-code").rsplit(" ", 1)[-1]
        page.click("#logout")
        page.wait_for_selector("#login-form:visible")
        page.click("#enrol summary")
        page.fill("#enrol-form [name=name]", "newrev")
        page.fill("#enrol-form [name=code]", code)
        page.fill("#enrol-form [name=password]", "chosen by the holder")
        page.click("#enrol-form button[type=submit]")
        page.wait_for_selector("#status:has-text('Password set')")
        login(page, "newrev", "chosen by the holder")
        assert page.inner_text("#who-name") == "newrev (reviewer)"
        browser.close()
    assert violations == []
