"""The console's enrol screen with a photo of two faces (issue 14, point 3): the boxes are drawn,
the largest is preselected where it dominates, the manager clicks the other, and the template
records the face clicked, in headless Debian chromium."""

from __future__ import annotations

import httpx
import pytest
from service_support import BASIS, LiveServer, jpeg, service_store, token_for
from sqlalchemy import select
from test_console import _login, browser  # noqa: F401  (the module's chromium fixture)
from test_pick import _with_bystander

from openlfr.api import create_app
from openlfr.api.roles import Role
from openlfr.store.models import ReferenceImage

pytestmark = pytest.mark.slow


def test_the_manager_clicks_the_face_meant(browser, database_url, astronaut, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setenv("OPENLFR_MODEL", "dlib-resnet-v1")  # the rule is geometric: any model
    store = service_store(database_url)
    photo = tmp_path / "two.jpg"
    photo.write_bytes(jpeg(_with_bystander(astronaut, 0.45)))
    with LiveServer(create_app(store, poll_alerts=False)) as server:
        manager = {"Authorization": f"Bearer {token_for(store, Role.WATCHLIST_MANAGER)}"}
        httpx.post(f"{server.url}/api/watchlists", headers=manager, json={"name": "wl"})
        found = httpx.post(
            f"{server.url}/api/watchlists/wl/faces",
            headers=manager,
            files={"file": ("two.jpg", photo.read_bytes())},
        ).json()
        small = found["faces"][1]["box"]

        page = browser.new_page()
        page.goto(server.url)
        _login(page, Role.WATCHLIST_MANAGER)
        page.click("#nav [data-view=watchlists]")
        page.click("#watchlists button")
        page.fill("#subject-form [name=name]", "eileen")
        page.fill("#subject-form [name=category]", "missing-at-risk")
        page.fill("#subject-form [name=reason]", "test")
        page.fill("#subject-form [name=legal_basis]", BASIS["legal_basis"])
        page.fill("#subject-form [name=authorised_by]", BASIS["authorised_by"])
        page.set_input_files("#subject-file", str(photo))
        page.wait_for_selector("#face-picker-hint:has-text('face 1 chosen')")  # the largest
        scale = float(page.get_attribute("#face-canvas", "data-scale"))
        middle = ((small[0] + small[2]) / 2 * scale, (small[1] + small[3]) / 2 * scale)
        page.click("#face-canvas", position={"x": middle[0], "y": middle[1]})
        page.wait_for_selector("#face-picker-hint:has-text('face 2 chosen')")
        page.click("#subject-form button[type=submit]")
        page.wait_for_selector("#status:has-text('Enrolled eileen')")
        page.close()
    with store() as session:
        image = session.scalar(select(ReferenceImage))
        assert image.templates[0].box == small  # the face clicked, in the photo kept whole


def test_an_officer_plans_alert_pushes_and_the_board_counts_them(  # type: ignore[no-untyped-def]
    browser,  # noqa: F811
    database_url,
    monkeypatch,
):
    from datetime import datetime, timedelta

    from openlfr.store.models import AlertPush

    monkeypatch.setenv("OPENLFR_WEBHOOK_SECRET", "a test signing secret")  # webhooks need one
    store = service_store(database_url)
    with LiveServer(create_app(store, poll_alerts=False)) as server:
        manager = {"Authorization": f"Bearer {token_for(store, Role.WATCHLIST_MANAGER)}"}
        httpx.post(f"{server.url}/api/watchlists", headers=manager, json={"name": "wl"})
        page = browser.new_page()
        page.goto(server.url)
        _login(page, Role.AUTHORISING_OFFICER)
        page.click("#nav [data-view=deployments]")
        page.click("#plan summary")
        page.wait_for_selector("#plan-form [name=watchlist] option[value=wl]", state="attached")
        page.fill("#plan-form [name=name]", "Pushed op")
        page.fill("#plan-form [name=location]", "High Street")
        page.fill("#plan-form [name=reason]", "why here, why now")
        ends = (datetime.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        page.fill("#plan-form [name=ends_at]", ends)
        page.fill("#plan-form [name=source]", "/dev/null")
        page.fill("#plan-form [name=webhook_url]", "https://alerts.example.org/hook?token=x")
        page.fill("#plan-form [name=mqtt_url]", "mqtt://broker.example.org:1883")
        page.click("#plan-form button[type=submit]")
        page.wait_for_selector("#status:has-text('Planned deployment')")
        row = page.locator("#board tr:has(td:has-text('Pushed op'))")
        row.locator("li:has-text('push webhook https://alerts.example.org/hook?...')").wait_for()
        row.locator("li:has-text('push mqtt mqtt://broker.example.org:1883: 0 sent')").wait_for()
        page.close()
    with store() as session:
        assert sorted(p.kind for p in session.scalars(select(AlertPush))) == ["mqtt", "webhook"]
