"""The console end to end in headless Debian chromium (Playwright): log in, an alert arrives
live, the reviewer decides and records the outcome by keyboard, the store has it. Screenshots of
the main screens go to docs/console/ when OPENLFR_UPDATE_SCREENSHOTS=1 (else a temp folder)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from service_support import (
    BASIS,
    PASSWORD,
    LiveServer,
    adjudicate,
    enrol_directly,
    insert_alert,
    jpeg,
    mark_ran,
    plan_deployment,
    service_store,
    token_for,
    user_name,
)
from sqlalchemy import select

from openlfr.api import create_app
from openlfr.api.roles import Role
from openlfr.store.models import Adjudication, Alert, AuditEntry, Deployment, Subject, Template
from openlfr.vision.models import _units, get_model

CHROMIUM = os.environ.get("OPENLFR_CHROMIUM", "/usr/bin/chromium")
DOCS_SHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _login(page, role: Role) -> None:  # type: ignore[no-untyped-def]
    page.fill("input[name=name]", user_name(role))
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#who:not([hidden])")


def test_reviewer_adjudicates_a_live_alert_by_keyboard(
    browser, database_url, astronaut, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import httpx

    # the documentation's screenshots are refreshed on request, not by every test run
    shots = DOCS_SHOTS if os.environ.get("OPENLFR_UPDATE_SCREENSHOTS") else tmp_path

    store = service_store(database_url)
    scene = plan_deployment(store)
    default = get_model().name  # the configured model: MobileFaceNet when installed
    face = astronaut[:300, 80:380].copy()
    # enrolled while dlib was the configured model; the manager re-embeds below
    monkeypatch.setenv("OPENLFR_MODEL", "dlib-resnet-v1")
    with LiveServer(create_app(store)) as server:
        manager = {"Authorization": f"Bearer {token_for(store, Role.WATCHLIST_MANAGER)}"}
        subject = {
            "name": "eileen",
            "category": "missing-at-risk",
            "reason": "test enrolment",
            **BASIS,
        }
        httpx.post(f"{server.url}/api/watchlists/demo/subjects", headers=manager, json=subject)
        httpx.post(
            f"{server.url}/api/watchlists/demo/subjects/eileen/images",
            headers=manager,
            files={"file": ("eileen.jpg", jpeg(face), "image/jpeg")},
            timeout=60,
        )
        monkeypatch.delenv("OPENLFR_MODEL")
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(server.url)
        page.wait_for_selector("#login-form")
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "login.png"))
        _login(page, Role.REVIEWER)
        page.wait_for_selector("#live.on")  # the event stream is connected
        assert page.locator("#queue-empty").is_visible()

        alert_id = insert_alert(store, scene, face, face[20:280, 30:270], subject="eileen")
        # on screen within 1 s of being written (the timeout fails the test otherwise)
        page.wait_for_selector(f'#queue button[data-alert="{alert_id}"]', timeout=1000)
        # polled from here: wait_for_function evaluates a string, which the console's CSP
        # (rightly) refuses
        page.locator("#probe").wait_for()
        deadline = time.monotonic() + 10
        while not page.locator("#probe").evaluate("img => img.naturalWidth > 0"):
            assert time.monotonic() < deadline, "the probe image did not load"
            page.wait_for_timeout(50)
        page.screenshot(path=str(shots / "alert-queue.png"), full_page=True)

        assert page.evaluate("document.activeElement.dataset.decision") == "match"
        page.keyboard.press("m")
        page.wait_for_selector("#outcome:not([hidden])")
        assert page.evaluate("document.activeElement.dataset.outcome") == "engaged"
        page.screenshot(path=str(shots / "outcome.png"), full_page=True)
        page.keyboard.press("2")
        page.wait_for_selector("#status:has-text('Outcome recorded: arrested')")
        page.wait_for_selector("#queue-empty:not([hidden])")

        page.keyboard.press("Alt+d")
        page.wait_for_selector("#board tr")
        page.click("#logout")
        page.wait_for_selector("#login-form:visible")

        _login(page, Role.AUTHORISING_OFFICER)
        page.click("#nav [data-view=deployments]")
        page.wait_for_selector("#board tr td:has-text('Test op')")
        board = page.locator("#board tr").first.locator("td").all_inner_texts()
        assert board[3:5] == ["demo", default]  # watchlist, then the model it searches with
        badge = page.locator("#board tr").first.locator("ul.cameras .badge")  # each camera's state
        assert badge.inner_text() == "planned" and "0 dropped" in board[6]
        # plan one: the model select holds the installed models, the default chosen
        page.click("#plan summary")
        page.wait_for_selector("#plan-form [name=watchlist] option[value=demo]", state="attached")
        options = page.locator("#plan-form [name=model] option").evaluate_all(
            "options => options.map(o => o.value)"
        )
        assert options == [n for n, unit in _units().items() if unit.installed()]
        assert page.input_value("#plan-form [name=model]") == default
        page.fill("#plan-form [name=name]", "Console op")
        page.fill("#plan-form [name=location]", "High Street")
        page.fill("#plan-form [name=reason]", "why here, why now")
        ends = (datetime.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")  # local time
        page.fill("#plan-form [name=ends_at]", ends)
        page.fill("#plan-form [name=source]", "/dev/null")
        page.select_option("#plan-form [name=model]", "dlib-resnet-v1")
        page.click("#plan-form button[type=submit]")
        page.wait_for_selector("#status:has-text('Planned deployment')")
        page.wait_for_selector("#board tr td:has-text('Console op')")
        assert page.input_value("#plan-form [name=model]") == default  # the form is reset
        page.screenshot(path=str(shots / "deployments.png"))
        page.click("#nav [data-view=watchlists]")
        page.click("#watchlists button")
        page.wait_for_selector("#subjects td:has-text('eileen')")
        assert page.locator("#reembed").is_hidden()  # the watchlist manager's
        page.click("#logout")
        page.wait_for_selector("#login-form:visible")

        # the watchlist manager sees which models have templates, and re-embeds
        _login(page, Role.WATCHLIST_MANAGER)
        page.click("#nav [data-view=watchlists]")
        page.click("#watchlists button")
        page.wait_for_selector("#subjects td:has-text('dlib-resnet-v1')")
        page.click(f"#reembed-buttons button:has-text('Re-embed with {default}')")
        made = 0 if default == "dlib-resnet-v1" else 1
        page.wait_for_selector(f"#reembed-result:has-text('{made} templates made')")
        if made:
            page.wait_for_selector(f"#subjects td:has-text('dlib-resnet-v1, {default}')")
        page.screenshot(path=str(shots / "watchlists.png"), full_page=True)
        context.close()
    with store() as session:
        adjudication = session.scalar(select(Adjudication))
        assert (adjudication.alert_id, adjudication.decision, adjudication.outcome) == (
            alert_id,
            "match",
            "arrested",
        )
        assert adjudication.reviewer == user_name(Role.REVIEWER)
        views = session.scalars(select(AuditEntry).where(AuditEntry.action == "view")).all()
        assert {v.object for v in views} >= {
            f"alert:{alert_id}:probe",
            f"alert:{alert_id}:reference",
        }
        planned = session.scalar(select(Deployment).where(Deployment.name == "Console op"))
        assert planned.model == "dlib-resnet-v1" and planned.location == "High Street"
        assert sorted(t.model for t in session.scalars(select(Template))) == sorted(
            {"dlib-resnet-v1", default}
        )
        reembeds = session.scalars(select(AuditEntry).where(AuditEntry.action == "re-embed")).all()
        assert [e.object for e in reembeds] == [f"watchlist:demo:model={default}:templates={made}"]


def test_reports_and_subject_rights_screens(browser, database_url, astronaut, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv
    import io
    import zipfile

    shots = DOCS_SHOTS if os.environ.get("OPENLFR_UPDATE_SCREENSHOTS") else tmp_path
    store = service_store(database_url)
    scene = plan_deployment(store)
    face = astronaut[:300, 80:380].copy()
    enrol_directly(store, "eileen", jpeg(face))
    adjudicate(store, insert_alert(store, scene, face, face, subject="eileen"), "match", "arrested")
    adjudicate(store, insert_alert(store, scene, face, face, subject="eileen"), "no-match")
    mark_ran(store, scene, faces=1234, hours=2)
    with LiveServer(create_app(store, poll_alerts=False)) as server:
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, accept_downloads=True
        )
        page = context.new_page()
        page.goto(server.url)
        _login(page, Role.AUDITOR)
        page.keyboard.press("Alt+r")
        page.wait_for_selector(
            f"#report-form option[value='{scene.deployment_id}']", state="attached"
        )
        page.select_option("#report-form [name=deployment_id]", str(scene.deployment_id))
        page.click("#report-form button[type=submit]")
        page.wait_for_selector("#report-rows td:has-text('1234')")
        cells = page.locator("#report-rows tr").first.locator("td").all_inner_texts()
        # alerts, true, false, engagements (an arrest is one), arrests
        assert cells[7:12] == ["2", "1", "1", "1", "1"]
        page.wait_for_selector("#report-charts img")
        page.screenshot(path=str(shots / "reports.png"), full_page=True)
        with page.expect_download() as info:
            page.click("#report-downloads a[data-format=csv]")
        rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_text())))
        assert rows[1][0] == str(scene.deployment_id) and rows[1][6] == "1234"

        # the auditor finds what is held, but neither exports nor erases
        page.keyboard.press("Alt+u")  # the users screen is the admin's: nothing happens
        assert page.locator("#view-users").is_hidden()
        page.keyboard.press("Alt+s")
        page.fill("#subject-find-form [name=name]", "eileen")
        page.keyboard.press("Enter")
        page.wait_for_selector("#holdings-count:has-text('1 watchlist entries, 2 alerts')")
        assert page.locator("#subject-actions").is_hidden()
        page.click("#logout")
        page.wait_for_selector("#login-form:visible")

        _login(page, Role.WATCHLIST_MANAGER)
        page.click("#nav [data-view=subjects]")
        page.fill("#subject-find-form [name=name]", "eileen")
        page.keyboard.press("Enter")
        page.wait_for_selector("#held-entries td:has-text('missing-at-risk')")
        with page.expect_download() as info:
            page.click("#subject-export")
        archive = zipfile.ZipFile(info.value.path())
        assert "subject.json" in archive.namelist() and len(archive.namelist()) == 4
        page.click("#subject-erase")
        page.fill("#erase-form [name=confirm_name]", "eileen")
        page.screenshot(path=str(shots / "subject-rights.png"), full_page=True)
        page.click("#erase-form button[type=submit]")
        page.wait_for_selector("#status:has-text('Erased 1 watchlist entries and 2 alerts')")
        page.wait_for_selector("#holdings-count:has-text('0 watchlist entries, 0 alerts')")
        context.close()
    with store() as session:
        assert session.scalar(select(Subject).where(Subject.name == "eileen")) is None
        assert session.scalar(select(Alert)) is None
        entries = session.scalars(select(AuditEntry)).all()
        assert "subject-erase" in {e.action for e in entries}
        assert "report-export" in {e.action for e in entries}
        assert not any("eileen" in e.object + e.purpose for e in entries)


def test_wrong_password_is_refused_in_the_console(browser, database_url) -> None:  # type: ignore[no-untyped-def]
    store = service_store(database_url)
    with LiveServer(create_app(store, poll_alerts=False)) as server:
        page = browser.new_page()
        page.goto(server.url)
        page.fill("input[name=name]", "reviewer")
        page.fill("input[name=password]", "wrong password")
        page.keyboard.press("Enter")
        page.wait_for_selector("#status.error:has-text('Log in refused')")
        assert page.locator("#nav").is_hidden()
        page.close()
