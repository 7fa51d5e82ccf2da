"""End to end in real headless Chromium, with personal accounts: a copied session cookie stops
working (and saves nothing) after sign-out, and the 6th wrong token within a minute gets 429.

Screenshots go to test-artifacts/console/ (names starting with `accounts-`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import console_server, server_env

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "datasets" / "demo" / "appeals.csv"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
OPERATOR = "e2e-accounts-operator-token-0123456789"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
APPEALS = [
    {"id": "b1", "text": "Яма во дворе", "district": "Невский"},
    {"id": "b2", "text": "течёт крыша", "district": "Невский"},
    {"id": "b3", "text": "фонарь мигает", "district": "Кировский"},
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory) -> Iterator[tuple[str, str, str]]:
    """`cur-ml serve` in its own process, on a store holding the account «Петрова»; yields
    the base URL, her token and a prediction served."""
    from cur_ml.model.training import ensure_default_model
    from cur_ml.store import make_engine, upgrade
    from cur_ml.store.users import UserRepository

    tmp = tmp_path_factory.mktemp("console_accounts_e2e")
    model_dir = tmp / "model"
    ensure_default_model(model_dir, DEMO, show_progress=False)
    url = f"sqlite:///{tmp / 'store.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    _, token = UserRepository(engine).add("Петрова", "operator")
    engine.dispose()
    env = server_env(
        CUR_ML_DATABASE_URL=url,
        CUR_ML_OPERATOR_TOKEN=OPERATOR,
        CUR_ML_ADMIN_TOKEN="",
    )
    with console_server(tmp, model_dir, env) as base:
        r = httpx.post(f"{base}/v1/predict", json={"appeals": APPEALS}, timeout=30)
        assert r.status_code == 200, r.text
        yield base, token, r.json()["predictions"][0]["prediction_id"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _context(browser, base: str):
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="ru-RU", base_url=base
    )
    context.set_default_timeout(15_000)
    return context


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"accounts-{name}.png"))


def _corrections(base: str, prediction_id: str) -> list[dict]:
    r = httpx.get(
        f"{base}/v1/corrections",
        params={"prediction_id": prediction_id},
        headers={"Authorization": f"Bearer {OPERATOR}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["corrections"]


def test_a_copied_cookie_fails_after_sign_out(browser, accounts_server):
    base, token, prediction_id = accounts_server
    mine, thief = _context(browser, base), _context(browser, base)
    try:
        page = mine.new_page()
        page.goto("/console/")
        page.locator("#token").fill(token)  # a personal token: no name to type
        page.locator("#token").press("Enter")
        page.wait_for_url("**/console/")
        assert "Петрова · оператор" in page.locator("header").inner_text()
        _shot(page, "01-signed-in")

        # Someone copies the session cookie into another browser: it works, for now.
        thief.add_cookies(mine.cookies())
        stolen = thief.new_page()
        stolen.goto("/console/")
        assert stolen.locator("h1").inner_text() == "Очередь на проверку"
        stolen.goto(f"/console/appeals/{prediction_id}")
        assert stolen.locator("#accept-all").is_visible()

        # Петрова signs out («Выйти»)...
        page.get_by_role("button", name="Выйти").click()
        page.wait_for_url("**/console/login?out=1")
        assert "Вы вышли из консоли." in page.content()

        # ...and the copy, on an appeal's card opened before, can no longer save anything.
        stolen.keyboard.press("a")  # accept all
        stolen.wait_for_url("**/console/login**")
        assert stolen.locator("h1").inner_text() == "Вход в консоль"
        _shot(stolen, "02-copied-cookie-after-sign-out")
        assert _corrections(base, prediction_id) == []
        stolen.goto("/console/")
        assert "/console/login" in stolen.url
    finally:
        mine.close()
        thief.close()


def test_the_sixth_wrong_token_within_a_minute_gets_429(browser, accounts_server):
    """Runs last in this module: it blocks 127.0.0.1 for the next minute."""
    base, token, _ = accounts_server
    context = _context(browser, base)
    try:
        page = context.new_page()
        page.goto("/console/login")

        def submit(value: str):
            page.locator("#token").fill(value)
            with page.expect_response(
                lambda r: r.url.endswith("/console/login") and r.request.method == "POST"
            ) as answer:
                page.locator("#token").press("Enter")
            page.wait_for_load_state()
            return answer.value

        for n in range(5):
            r = submit(f"wrong-token-{n:020d}")
            assert r.status == 403, n
            assert page.locator("#login-error").inner_text() == "Токен не подходит."
            # Focus back on the token field, marked invalid for screen readers.
            assert page.evaluate("document.activeElement.id") == "token"
            assert page.locator("#token").get_attribute("aria-invalid") == "true"
        _shot(page, "03-wrong-token")

        r = submit("wrong-token-the-sixth-000000")
        assert r.status == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        error = page.locator("#login-error").inner_text()
        assert error.startswith("Слишком много неудачных попыток входа. Повторите через")
        _shot(page, "04-429-too-many")

        # The block holds before any token is looked at: the right one waits too.
        assert submit(token).status == 429
    finally:
        context.close()
