"""End to end in real headless Chromium: a uvicorn process on the demo model, an operator
signs in, works the queue with the keyboard, and the correction shows up in the API.

Screenshots go to test-artifacts/console/; with UPDATE_DOC_SCREENSHOTS=1 the two README
screenshots in docs/screenshots/ are refreshed too.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from browser_support import console_server, server_env

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "datasets" / "demo" / "appeals.csv"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
DOC_SHOTS = REPO / "docs" / "screenshots"
OPERATOR, ADMIN = "e2e-operator-token-0123456789", "e2e-admin-token-0123456789"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SOURCES = ("portal", "vk", "telegram", "ok")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


def _demo_appeals(n: int) -> list[dict]:
    """The first `n` appeals of the demo dev split, as a routing service would send them."""
    with DEMO.open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev"][:n]
    keys = ("id", "created_at", "text", "city_object", "district", "address")
    return [
        {**{k: r[k] for k in keys if r.get(k)}, "source": SOURCES[i % len(SOURCES)]}
        for i, r in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`cur-ml serve` in its own process on the default model (demo train split)."""
    from cur_ml.model.training import ensure_default_model

    tmp = tmp_path_factory.mktemp("console_e2e")
    model_dir = tmp / "model"
    ensure_default_model(model_dir, DEMO, show_progress=False)
    env = server_env(
        CUR_ML_DATABASE_URL=f"sqlite:///{tmp / 'store.sqlite3'}",
        CUR_ML_OPERATOR_TOKEN=OPERATOR,
        CUR_ML_ADMIN_TOKEN=ADMIN,
    )
    with console_server(tmp, model_dir, env) as base:
        yield base


@pytest.fixture(scope="module")
def api(server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server, timeout=30, headers={"Authorization": f"Bearer {OPERATOR}"}
    ) as client:
        yield client


@pytest.fixture(scope="module")
def filled(api) -> int:
    """Predict 40 demo appeals; wait until the review queue holds those that need a person."""
    r = api.post("/v1/predict", json={"appeals": _demo_appeals(40)})
    assert r.status_code == 200, r.text
    expected = sum(p["needs_review"] for p in r.json()["predictions"])
    assert expected >= 3, "the demo model should send some appeals to review"
    deadline = time.monotonic() + 30
    while True:
        page = api.get("/v1/review-queue", params={"limit": 1}).json()
        if page["counts"]["pending"] >= expected:
            return expected
        assert time.monotonic() < deadline, page["counts"]
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="ru-RU", base_url=server
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


def _pending(page) -> int:
    return int(page.locator("#count-pending").inner_text())


def _prediction_id(url: str) -> str:
    return urlparse(url).path.rsplit("/", 1)[-1]


def _sign_in(page, token: str, name: str, shot: str = "") -> None:
    page.goto("/console/")
    assert "/console/login" in page.url  # not signed in yet: sent to the form
    if shot:
        _shot(page, shot)
    page.locator("#name").fill(name)
    page.locator("#token").fill(token)
    page.locator("#token").press("Enter")
    page.wait_for_url("**/console/")


def test_operator_corrects_an_agency_with_the_keyboard(page, api, filled):
    _sign_in(page, OPERATOR, "Петрова", shot="00-login")
    assert page.locator("h1").inner_text() == "Очередь на проверку"
    pending = _pending(page)
    assert pending == filled
    _shot(page, "01-queue", doc="queue.png")

    # The most urgent, least confident appeal has the focus: Enter opens it.
    assert page.evaluate("document.activeElement.classList.contains('row-link')")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/appeals/**")
    pid = _prediction_id(page.url)
    assert page.locator("#status").inner_text().strip() == "в очереди"
    assert page.locator("#appeal-text mark.hl").count() > 0  # deciding words are marked

    # Move to the agency with the arrows, search a label with "/", type it, Enter.
    for _ in range(4):
        if page.evaluate("document.activeElement.id") == "head-agency":
            break
        page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.id") == "head-agency"
    current = page.locator("#head-agency .value strong").inner_text()
    options = page.locator("#labels-agency option").evaluate_all("os => os.map(o => o.value)")
    target = next(o for o in options if o != current)
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "custom"
    page.keyboard.type(target)
    page.keyboard.press("Enter")
    page.wait_for_url("**saved=agency**")
    assert page.locator("#head-agency .value strong").inner_text() == target
    history = page.locator("#history tbody tr").first.inner_text()
    assert "Петрова" in history and target in history
    # Review by field: the appeal waits while another field it was flagged for is open.
    open_heads = page.locator("section.head.open").evaluate_all("hs => hs.map(h => h.id)")
    assert "head-agency" not in open_heads
    status = page.locator("#status").inner_text().strip()
    assert status == ("в очереди" if open_heads else "проверено")
    _shot(page, "02-appeal-corrected", doc="appeal.png")
    if open_heads:  # "a" accepts the rest as the model has them, and goes on
        page.keyboard.press("a")
        page.wait_for_url(lambda url: pid not in url)

    # Back to the queue ("q"): the appeal left it.
    page.keyboard.press("q")
    page.wait_for_url("**/console/**")
    assert _pending(page) == pending - 1
    assert page.locator(f'a.row-link[href*="{pid}"]').count() == 0
    assert int(page.locator("#count-reviewed").inner_text()) == 1
    _shot(page, "03-queue-after")

    # The API sees the same correction.
    r = api.get("/v1/corrections", params={"prediction_id": pid})
    assert r.status_code == 200, r.text
    [correction] = [c for c in r.json()["corrections"] if c["field"] == "agency"]
    assert correction["value"] == target
    assert correction["old_value"] == current
    assert correction["operator"] == "Петрова"


def test_accept_all_moves_to_the_next_appeal(page, api, filled):
    _sign_in(page, OPERATOR, "Петрова")
    pending = _pending(page)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/appeals/**")
    pid = _prediction_id(page.url)
    page.keyboard.press("a")
    page.wait_for_url(lambda url: "/console/appeals/" in url and pid not in url)
    _shot(page, "04-next-after-accept")
    stored = api.get("/v1/corrections", params={"prediction_id": pid}).json()["corrections"]
    assert sorted(c["field"] for c in stored) == ["agency", "category", "reason", "urgency"]
    assert all(c["value"] == c["old_value"] for c in stored)  # accepted as predicted
    # "n" skips to the next one without deciding; the queue lost exactly one appeal.
    skipped = _prediction_id(page.url)
    page.keyboard.press("n")
    page.wait_for_url(lambda url: skipped not in url)
    assert parse_qs(urlparse(page.url).query).get("pos") == ["1"]
    page.keyboard.press("q")
    page.wait_for_url("**/console/**")
    assert _pending(page) == pending - 1


def test_admin_sees_retraining_and_the_model(page, filled):
    _sign_in(page, ADMIN, "")
    page.keyboard.press("m")
    page.wait_for_url("**/console/model")
    assert page.locator("#model-version").inner_text()
    assert page.locator("table.metrics").count() >= 1
    assert page.locator("#retrain").is_visible()
    _shot(page, "05-model-admin")
