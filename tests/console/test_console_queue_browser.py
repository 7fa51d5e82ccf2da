"""End to end in real headless Chromium: the queue built around deadlines.

A `cur-ml serve` process on the demo model of a centre that checks nearly everything; the
routing service sends appeals written today and one written long ago (past its «Ответить
до»). The overdue appeal heads the queue although urgency and confidence alone would not
put it there; a search plus a filter narrow the queue to what the API finds for the same
query; the model page reloads itself when the retrain it shows ends. Screenshots go to
test-artifacts/console/ (with UPDATE_DOC_SCREENSHOTS=1 the README's queue.png too).
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import console_server, server_env

from cur_ml.store import make_engine
from cur_ml.store.retrain_runs import RetrainRunRepository

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "datasets" / "demo" / "appeals.csv"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
DOC_SHOTS = REPO / "docs" / "screenshots"
OPERATOR, ADMIN = "e2e-queue-operator-0123456789", "e2e-queue-admin-0123456789"
URGENCY_RANK = {"high": 0, "medium": 1, "low": 2}
#: Written long ago: its deadline has passed. A quiet, low-urgency kind of appeal.
OVERDUE = {
    "id": "overdue-1",
    "text": "Просим покрасить скамейки и урны в сквере у дома, краска облезла",
    "created_at": "2024-01-10T10:00:00+03:00",
    "district": "Невский",
    "source": "portal",
}
LIFTS = [
    {"id": "lift-1", "text": "Не работает лифт в подъезде третий день", "district": "Невский"},
    {"id": "lift-2", "text": "Лифт застревает между этажами", "district": "Кировский"},
    {"id": "lift-3", "text": "В лифте не горит свет", "district": "Невский"},
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


def _appeals(n: int) -> list[dict]:
    """`n` demo appeals as written today (no `created_at`: due from now), the lift appeals,
    and the overdue one."""
    with DEMO.open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev"][:n]
    keys = ("id", "text", "city_object", "district", "address")
    today = [{k: r[k] for k in keys if r.get(k)} for r in rows]
    return [*today, *LIFTS, OVERDUE]


@pytest.fixture(scope="module")
def server(tmp_path_factory, strict_model_dir) -> Iterator[tuple[str, str]]:
    """(base URL, store URL) of `cur-ml serve` in its own process."""
    tmp = tmp_path_factory.mktemp("queue_e2e")
    store = f"sqlite:///{tmp / 'store.sqlite3'}"
    env = server_env(
        CUR_ML_DATABASE_URL=store,
        CUR_ML_OPERATOR_TOKEN=OPERATOR,
        CUR_ML_ADMIN_TOKEN=ADMIN,
    )
    with console_server(tmp, strict_model_dir, env) as base:
        yield base, store


@pytest.fixture(scope="module")
def api(server) -> Iterator[httpx.Client]:
    base, _ = server
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def queued(api) -> list[dict]:
    """The review queue after the routing service sent the appeals (as the API lists it)."""
    r = api.post("/v1/predict", json={"appeals": _appeals(30)})
    assert r.status_code == 200, r.text
    flagged = sum(p["needs_review"] for p in r.json()["predictions"])
    overdue = next(p for p in r.json()["predictions"] if p["id"] == OVERDUE["id"])
    assert overdue["needs_review"], "the strict demo model should ask to review it"
    deadline = time.monotonic() + 30
    while True:
        page = api.get("/v1/review-queue", params={"limit": 500}).json()
        if page["counts"]["pending"] >= flagged:
            return page["items"]
        assert time.monotonic() < deadline, page["counts"]
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="ru-RU", base_url=server[0]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _shot(page, name: str, doc: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target))
    if doc and os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOC_SHOTS / doc)


def _sign_in(page, token: str, name: str, target: str = "/console/") -> None:
    page.goto(target)
    assert "/console/login" in page.url
    if page.locator("#name").count():  # the name field is there for the shared tokens
        page.locator("#name").fill(name)
    page.locator("#token").fill(token)
    page.locator("#token").press("Enter")
    page.wait_for_url(f"**{target}")


def _row_ids(page) -> list[str]:
    return page.locator("table.queue tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")


def test_the_overdue_appeal_heads_the_queue(page, queued):
    expect = pytest.importorskip("playwright.sync_api").expect
    overdue = next(i for i in queued if i["id"] == OVERDUE["id"])
    assert overdue["overdue"] is True and queued[0]["id"] == OVERDUE["id"]
    # Urgency and confidence alone would not put it first: the deadline does.
    key = (URGENCY_RANK[overdue["urgency"]], overdue["min_confidence"])
    others = [(URGENCY_RANK[i["urgency"]], i["min_confidence"]) for i in queued[1:]]
    assert min(others) < key, "pick an overdue appeal the old order would not put first"

    page.clock.install()  # the page's own clock, moved on below
    _sign_in(page, OPERATOR, "Петрова")
    rows = _row_ids(page)
    assert rows[0] == overdue["prediction_id"]
    first = page.locator("table.queue tbody tr").first
    assert "overdue" in first.get_attribute("class")
    assert "просрочено на" in first.locator("time[data-countdown]").inner_text()
    assert int(page.locator("#count-overdue").inner_text()) == 1
    second = page.locator("table.queue tbody tr").nth(1)
    assert "осталось" in second.locator("time[data-countdown]").inner_text()
    assert page.locator("table.queue tr.overdue").count() == 1
    _shot(page, "10-queue-deadlines", doc="queue.png")
    # The countdowns keep running in the open page: a year later every deadline has passed.
    page.clock.fast_forward(400 * 24 * 3600 * 1000)
    rows_shown = page.locator("table.queue tbody tr").count()
    expect(page.locator("table.queue tr.overdue")).to_have_count(rows_shown)
    texts = page.locator("time[data-countdown]").all_inner_texts()
    assert texts and all(t.startswith("просрочено на") for t in texts), texts
    # Enter opens the focused first row: the overdue appeal.
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/appeals/{overdue['prediction_id']}**")


def test_search_and_a_filter_narrow_the_queue(page, api, queued):
    _sign_in(page, OPERATOR, "Петрова")
    everything = int(page.locator("#count-pending").inner_text())
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "q"
    page.keyboard.type("лифт")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=**")
    found = api.get("/v1/review-queue", params={"q": "лифт"}).json()
    assert 0 < found["counts"]["pending"] < everything
    assert _row_ids(page) == [i["prediction_id"] for i in found["items"]]
    assert all("лифт" in i["text"].lower() for i in found["items"])
    _shot(page, "11-queue-search")

    page.locator("#filter-district").select_option("Невский")
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url("**district=**")
    narrowed = api.get("/v1/review-queue", params={"q": "лифт", "district": "Невский"}).json()
    assert 0 < narrowed["counts"]["pending"] < found["counts"]["pending"]
    assert _row_ids(page) == [i["prediction_id"] for i in narrowed["items"]]
    assert int(page.locator("#count-pending").inner_text()) == narrowed["counts"]["pending"]
    assert page.locator("#first-filter").input_value() == "лифт"  # the search is kept
    _shot(page, "12-queue-search-and-district")


def test_the_model_page_reloads_itself_when_the_retrain_ends(page, server, queued):
    base, store = server
    r = httpx.post(
        f"{base}/v1/admin/retrain", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    _sign_in(page, ADMIN, "Админ", target="/console/model")
    assert page.locator("#retrain-live").is_visible()
    # No worker runs in this test: end the job in the store, as a worker would.
    engine = make_engine(store)
    try:
        RetrainRunRepository(engine).finish(run_id, "failed", error="worker w1 was interrupted")
    finally:
        engine.dispose()
    page.locator("text=обработчик переобучения остановлен").wait_for(timeout=20_000)
    assert page.locator("#retrain-live").count() == 0  # and it stops watching
    _shot(page, "13-model-after-retrain")
