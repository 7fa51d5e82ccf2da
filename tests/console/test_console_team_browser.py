"""End to end in real headless Chromium: operators as a team.

A `cur-ml serve` process on the demo model of a centre that checks nearly everything; two
personal accounts made with `cur-ml users add` sign in from two browser contexts. They take
the next appeal at the same moment and get different ones; a save over the other's newer
change gets the 409 card with a reload; a corrected reason moves the category; an undo in
«Проверенные мной» restores the labels; a group of near-identical appeals is accepted at
once. Screenshots go to test-artifacts/console/ (team-*.png).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from browser_support import console_server, server_env

from cur_ml.model.bundle import load_model

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "datasets" / "demo" / "appeals.csv"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
ADMIN = "e2e-team-admin-token-0123456789"
#: One broken lift, three residents: a copy (case and punctuation aside) and other words.
LIFT = [
    {"id": "lift-a", "text": "Третий день не работает лифт в подъезде, пожилые не могут выйти"},
    {"id": "lift-b", "text": "третий день не работает лифт в подъезде, пожилые не могут выйти!!"},
    {"id": "lift-c", "text": "Не работает лифт в подъезде третий день, пожилые не могут выйти"},
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


def _appeals(n: int) -> list[dict]:
    with DEMO.open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev"][:n]
    keys = ("id", "text", "city_object", "district", "address")
    return [{k: r[k] for k in keys if r.get(k)} for r in rows]


@pytest.fixture(scope="module")
def server(tmp_path_factory, strict_model_dir) -> Iterator[dict]:
    """`cur-ml serve` in its own process, and the tokens of two accounts made by the CLI."""
    tmp = tmp_path_factory.mktemp("team_e2e")
    env = server_env(
        CUR_ML_DATABASE_URL=f"sqlite:///{tmp / 'store.sqlite3'}",
        CUR_ML_OPERATOR_TOKEN="",
        CUR_ML_ADMIN_TOKEN=ADMIN,
    )
    cli = [sys.executable, "-m", "cur_ml.cli", "users", "add"]
    tokens = {
        name: subprocess.run(
            [*cli, name, "--role", "operator"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        for name in ("Петрова", "Сидоров")
    }
    with console_server(tmp, strict_model_dir, env) as base:
        yield {"base": base, "tokens": tokens}


@pytest.fixture(scope="module")
def api(server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server['tokens']['Петрова']}"}
    with httpx.Client(base_url=server["base"], timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def filled(api) -> dict[str, dict]:
    """Predictions of 30 demo appeals, by id, once all are queued."""
    r = api.post("/v1/predict", json={"appeals": _appeals(30)})
    assert r.status_code == 200, r.text
    preds = {p["id"]: p for p in r.json()["predictions"]}
    flagged = sum(p["needs_review"] for p in preds.values())
    deadline = time.monotonic() + 30
    while api.get("/v1/review-queue", params={"limit": 1}).json()["counts"]["pending"] < flagged:
        assert time.monotonic() < deadline, "the predictions did not reach the queue"
        time.sleep(0.1)
    return preds


@pytest.fixture(scope="module")
def taxonomy(strict_model_dir):
    return load_model(strict_model_dir).classifier.taxonomy_


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
def operators(browser, server, filled) -> Iterator[dict]:
    """Петрова and Сидоров signed in with their personal tokens, each in their own context."""
    contexts, pages = [], {}
    for name, token in server["tokens"].items():
        context = browser.new_context(
            viewport={"width": 1366, "height": 900}, locale="ru-RU", base_url=server["base"]
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto("/console/")
        assert "/console/login" in page.url
        page.locator("#token").fill(token)
        page.locator("#token").press("Enter")
        page.wait_for_url("**/console/")
        assert page.locator(".who").inner_text().startswith(f"{name} ·")
        contexts.append(context)
        pages[name] = page
    yield pages
    for context in contexts:
        context.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _pid(page) -> str:
    return urlparse(page.url).path.rsplit("/", 1)[-1]


def _value(page, head: str) -> str:
    return page.locator(f"#head-{head} .value strong").inner_text()


def _take_next(page) -> str:
    page.locator("#take-next").click()
    page.wait_for_url("**/console/appeals/**")
    return _pid(page)


def _set(page, head: str, label: str, comment: str = "") -> None:
    """Type a label into a field's search (and a comment), then Enter."""
    form = page.locator(f"#head-{head} form")
    form.locator("[data-search]").fill(label)
    if comment:
        form.locator("input[name=comment]").fill(comment)
    form.locator("[data-search]").press("Enter")
    page.wait_for_load_state()


def test_two_accounts_take_the_next_appeal_at_once_and_get_different_ones(operators):
    petrova, sidorov = operators["Петрова"], operators["Сидоров"]
    for page in (petrova, sidorov):  # both clicks leave before either answer arrives
        page.evaluate("document.getElementById('take-next').click()")
    for page in (petrova, sidorov):
        page.wait_for_url("**/console/appeals/**")
    hers, his = _pid(petrova), _pid(sidorov)
    assert hers != his
    assert petrova.locator("#held").count() == 0 and sidorov.locator("#held").count() == 0
    _shot(petrova, "team-01-petrova-takes")
    _shot(sidorov, "team-02-sidorov-takes")
    # The queue shows who holds which.
    sidorov.goto("/console/")
    row = sidorov.locator(f'tr:has(a.row-link[href*="{hers}"])')
    assert "открыто: Петрова" in row.inner_text()
    _shot(sidorov, "team-03-queue-shows-holders")


def test_a_stale_save_gets_the_409_card_and_a_reload(operators, taxonomy):
    petrova, sidorov = operators["Петрова"], operators["Сидоров"]
    pid = _take_next(petrova)
    sidorov.goto(f"/console/appeals/{pid}")  # he opens her appeal anyway
    assert "открыто у Петрова" in sidorov.locator("#held").inner_text()
    reason = next(
        r for r in taxonomy.category_of if taxonomy.category_of[r] != _value(petrova, "category")
    )
    _set(petrova, "reason", reason)
    petrova.wait_for_url("**saved=reason**")

    agency = sidorov.locator("#labels-agency option").first.get_attribute("value")
    _set(sidorov, "agency", agency)
    conflict = sidorov.locator("#conflict")
    assert conflict.is_visible()
    assert "Петрова" in conflict.inner_text() and reason in conflict.inner_text()
    assert _value(sidorov, "reason") == reason  # the card below is the appeal as it is now
    _shot(sidorov, "team-04-stale-save-409")
    sidorov.locator("#reload").click()
    sidorov.wait_for_load_state()
    assert sidorov.locator("#conflict").count() == 0
    _set(sidorov, "agency", agency)
    sidorov.wait_for_url("**saved=agency**")
    assert _value(sidorov, "agency") == agency and _value(sidorov, "reason") == reason


def test_a_corrected_reason_moves_the_category(operators, taxonomy, api):
    petrova = operators["Петрова"]
    pid = _take_next(petrova)
    before = _value(petrova, "category")
    reason = next(r for r in taxonomy.category_of if taxonomy.category_of[r] != before)
    _set(petrova, "reason", reason, comment="по фото: это другое")
    petrova.wait_for_url("**saved=reason**")
    category = taxonomy.category_of[reason]
    assert _value(petrova, "category") == category
    assert "следует из причины" in petrova.locator("#head-category .value").inner_text()
    assert f"«{before}» → «{category}»" in petrova.locator(".notice").inner_text()
    assert "по фото: это другое" in petrova.locator("#history").inner_text()
    _shot(petrova, "team-05-reason-moves-category")
    stored = api.get(f"/v1/predictions/{pid}").json()
    assert stored["effective"]["category"] == category
    assert [c["source"] for c in stored["corrections"]][:2] == ["console", "derived"]


def test_undo_restores_the_previous_labels(operators, api):
    petrova = operators["Петрова"]
    pid = _take_next(petrova)
    predicted = api.get(f"/v1/predictions/{pid}").json()["prediction"]
    labels = {h: predicted[h] for h in ("category", "reason", "urgency", "agency")}
    agency = next(
        o
        for o in petrova.locator("#labels-agency option").evaluate_all("os => os.map(o => o.value)")
        if o != labels["agency"]
    )
    _set(petrova, "agency", agency)
    petrova.wait_for_url("**saved=agency**")
    petrova.keyboard.press("a")  # the rest as the model has it, and on to the next
    petrova.wait_for_url(lambda url: pid not in url)
    assert api.get(f"/v1/predictions/{pid}").json()["review"]["done"]

    petrova.keyboard.press("p")
    petrova.wait_for_url("**/console/mine")
    row = petrova.locator(f'tr[data-id="{pid}"]')
    assert "проверено" in row.inner_text()
    _shot(petrova, "team-06-reviewed-by-me")
    row.locator("button.undo").click()
    petrova.wait_for_url("**msg=undone")
    assert "отменено" in petrova.locator(f'tr[data-id="{pid}"]').inner_text()
    _shot(petrova, "team-07-undone")

    after = api.get(f"/v1/predictions/{pid}").json()
    assert after["effective"] == labels  # restored
    assert not after["review"]["done"]  # back in the queue
    sources = [c["source"] for c in after["corrections"]]  # appended: one undo per row of hers
    undone = len(sources) // 2
    assert set(sources[:undone]) <= {"console", "derived"} and sources[undone:] == ["undo"] * undone
    petrova.goto(f"/console/appeals/{pid}")
    assert petrova.locator("#status").inner_text().strip() == "в очереди"
    assert _value(petrova, "agency") == labels["agency"]


def test_bulk_accept_closes_a_group_of_near_duplicates(operators, api):
    petrova = operators["Петрова"]
    # Three residents write about one lift (sent now: nobody has touched them).
    lifts = [{**a, "district": "Невский", "city_object": "Дом"} for a in LIFT]
    preds = api.post("/v1/predict", json={"appeals": lifts}).json()["predictions"]
    assert all(p["needs_review"] for p in preds), "the strict model flags them"
    lead, *twins = (p["prediction_id"] for p in preds)
    deadline = time.monotonic() + 30
    while api.get(f"/v1/predictions/{twins[-1]}").status_code != 200:  # written by now
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pending = api.get("/v1/review-queue", params={"limit": 1}).json()["counts"]["pending"]
    petrova.goto(f"/console/appeals/{lead}")
    petrova.locator("#similar").click()
    petrova.wait_for_url("**/similar**")
    shown = petrova.locator("#group tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert shown[0] == lead and set(twins) <= set(shown)
    assert petrova.locator("#group").inner_text().count("тот же текст") >= 1
    for pid in (lead, *twins):
        assert petrova.locator(f'tr[data-id="{pid}"] input[name=ids]').is_checked()
    _shot(petrova, "team-08-group-of-near-duplicates")
    petrova.locator("input[name=comment]").fill("одна авария")
    petrova.locator("#accept-group").click()
    petrova.wait_for_url("**done=**")
    accepted = int(
        re.search(r"Принято обращений: (\d+)", petrova.locator("#bulk-done").inner_text())[1]
    )
    assert accepted == len(shown)
    _shot(petrova, "team-09-group-accepted")
    for pid in (lead, *twins):
        detail = api.get(f"/v1/predictions/{pid}").json()
        assert detail["review"]["done"]
        assert {(c["operator"], c["comment"]) for c in detail["corrections"]} == {
            ("Петрова", "одна авария")
        }
    after = api.get("/v1/review-queue", params={"limit": 1}).json()["counts"]["pending"]
    assert after == pending - accepted
    petrova.keyboard.press("m")
    petrova.wait_for_url("**/console/model")
    assert "Петрова" in petrova.locator("#per-operator").inner_text()
    _shot(petrova, "team-10-model-page-counts")
