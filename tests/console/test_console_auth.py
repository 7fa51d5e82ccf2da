"""Sign-in, the session cookie, roles, CSRF, and the console switched off."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cur_ml.console.session import COOKIE, LOGIN_COOKIE
from cur_ml.store.retrain_runs import RetrainRunRepository


def test_without_tokens_the_console_says_it_is_disabled(app_factory):
    with app_factory(operator_token=None, admin_token=None) as client:
        for path in ("/console/login", "/console/", "/console/model"):
            r = client.get(path)
            assert r.status_code == 403
            assert "Консоль выключена" in r.text
        assert client.post("/console/login", data={"token": "x"}).status_code == 403


def test_pages_send_the_visitor_to_the_login_form(console):
    r = console.get("/console/appeals/abc?district=x")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Fappeals%2Fabc%3Fdistrict%3Dx"
    page = console.get(r.headers["location"])
    assert page.status_code == 200
    assert 'value="/console/appeals/abc?district=x"' in page.text
    assert "Вход в консоль" in page.text


def test_the_cookies_are_http_only_strict_and_hold_only_random_ids(console, csrf_of, tokens):
    login = console.get("/console/login")
    form_cookie = login.headers["set-cookie"]
    assert form_cookie.startswith(f"{LOGIN_COOKIE}=")  # the form's CSRF token, nothing stored
    assert "Content-Security-Policy" in login.headers
    r = console.post(
        "/console/login",
        data={"token": tokens["operator"], "name": "Иванова", "csrf": csrf_of(login.text)},
    )
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http in tests
    session_id = console.cookies.get(COOKIE, path="/console")
    assert len(session_id) == 43  # 32 random bytes; nothing else (no name, no role) in it
    assert "Иванова" not in cookie and "operator" not in cookie
    assert console.get("/console/").status_code == 200


def test_the_cookie_is_secure_over_https(app_factory, csrf_of, tokens):
    with app_factory() as plain:
        client = TestClient(plain.app, base_url="https://console.example", follow_redirects=False)
        page = client.get("/console/login")
        assert "; secure" in page.headers["set-cookie"].lower()
        r = client.post(
            "/console/login", data={"token": tokens["operator"], "csrf": csrf_of(page.text)}
        )
        assert r.status_code == 303
        assert "; secure" in r.headers["set-cookie"].lower()


def test_a_wrong_token_shows_the_form_again_in_russian(console, csrf_of):
    page = console.get("/console/login")
    r = console.post(
        "/console/login", data={"token": "wrong", "name": "Иванова", "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 403
    assert "Токен не подходит." in r.text
    assert 'value="Иванова"' in r.text  # the name is kept
    assert console.get("/console/").status_code == 303  # still signed out


def test_login_without_the_forms_csrf_token_is_refused(console, tokens):
    console.get("/console/login")
    r = console.post("/console/login", data={"token": tokens["operator"], "csrf": "forged"})
    assert r.status_code == 400
    assert "Форма устарела" in r.text
    assert console.get("/console/").status_code == 303


def test_a_forged_cookie_is_ignored(console):
    console.cookies.set(COOKIE, "eyJyIjoiYWRtaW4ifQ.AAAA", path="/console")
    assert console.get("/console/").status_code == 303


def test_next_never_leaves_the_console(console, csrf_of, tokens):
    page = console.get("/console/login")
    for bad in ("https://evil.example/", "//evil.example", "/v1/corrections", "/console//x"):
        console.cookies.clear()
        page = console.get("/console/login")
        r = console.post(
            "/console/login",
            data={"token": tokens["operator"], "csrf": csrf_of(page.text), "next": bad},
        )
        assert r.headers["location"] == "/console/", bad


def test_operator_sees_the_model_but_cannot_retrain(console, sign_in, csrf_of):
    sign_in(console)
    page = console.get("/console/model")
    assert page.status_code == 200
    assert "Модель в работе" in page.text
    assert 'id="retrain"' not in page.text
    assert "Последние переобучения" not in page.text
    r = console.post("/console/model/retrain", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 403
    assert "только администратору" in r.text


def test_admin_retrains_from_the_model_page(console, sign_in, csrf_of, tokens):
    jobs = console.app.state.retrain_jobs
    runs = RetrainRunRepository(jobs.engine)
    done = runs.start("api", 0)
    runs.finish(
        done.id,
        "rejected",
        result={
            "challenger_version": "v-challenger",
            "reasons": ["agency accuracy 0.5000 < champion 0.6000 - 0.01"],
        },
    )
    started: list[str] = []
    jobs.start = lambda trigger, region=None: started.append(trigger) or done  # no training here
    sign_in(console, token=tokens["admin"], name="")
    page = console.get("/console/model")
    assert 'id="retrain"' in page.text
    assert "v-challenger" in page.text
    assert "agency accuracy 0.5000 &lt; champion 0.6000 - 0.01" in page.text
    assert "отклонена" in page.text
    assert "admin · администратор" in page.text
    assert console.post("/console/model/retrain", data={"csrf": "nope"}).status_code == 403
    assert started == []
    r = console.post("/console/model/retrain", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/model?msg=started"
    assert started == ["console"]
    jobs.start = lambda trigger, region=None: None  # one already running
    r = console.post("/console/model/retrain", data={"csrf": csrf_of(page.text)})
    assert r.headers["location"] == "/console/model?msg=busy"
    assert "уже идёт" in console.get(r.headers["location"]).text


def test_logout_needs_the_csrf_token_and_ends_the_session(console, sign_in, csrf_of):
    sign_in(console)
    page = console.get("/console/")
    assert console.post("/console/logout", data={"csrf": "forged"}).status_code == 303
    assert console.get("/console/").status_code == 200  # still signed in
    r = console.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert r.headers["location"] == "/console/login?out=1"
    assert console.get("/console/").status_code == 303
    assert "Вы вышли из консоли." in console.get("/console/login?out=1").text
