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
