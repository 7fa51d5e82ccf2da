"""Fixtures of the console tests: an app on the demo model with operator and admin tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cur_ml.api.main import create_app
from cur_ml.model.training import train_model
from cur_ml.settings import Settings

OPERATOR_TOKEN = "operator-secret-token-0123456"
ADMIN_TOKEN = "admin-secret-token-0123456"
#: Appeals of the kinds the demo data holds; short and mixed ones go to review.
APPEALS = [
    {"id": "a1", "text": "Яма во дворе", "district": "Невский", "source": "portal"},
    {"id": "a2", "text": "Не вывозят мусор, баки переполнены", "district": "Пушкинский"},
    {"id": "a3", "text": "течёт крыша", "district": "Невский", "source": "vk"},
    {"id": "a4", "text": "Холодно в парадной", "source": "telegram"},
    {"id": "a5", "text": "фонарь мигает", "district": "Кировский", "source": "portal"},
    {"id": "a6", "text": "Нет света в лифте", "district": "Пушкинский", "source": "vk"},
]


def console_settings(tmp: Path, model_dir: Path, **overrides) -> Settings:
    values = {
        "model_dir": model_dir,
        "database_url": f"sqlite:///{tmp / 'store.sqlite3'}",
        "predict_token": None,
        "operator_token": OPERATOR_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "model_poll_seconds": 0,
        "mlflow_enabled": False,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """A started app whose model is loaded (redirects are not followed: tests look at them)."""
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as client:
        deadline = time.monotonic() + 30
        while not app.state.slot.ready:
            assert app.state.slot.error is None, app.state.slot.error
            assert time.monotonic() < deadline, "model did not load"
            time.sleep(0.01)
        yield client


def _seed(client: TestClient, appeals: list[dict] | None = None) -> list[dict]:
    r = client.post("/v1/predict", json={"appeals": appeals or APPEALS})
    assert r.status_code == 200, r.text
    assert client.app.state.writer.flush(10)
    return r.json()["predictions"]


def _csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def _sign_in(client: TestClient, token: str = OPERATOR_TOKEN, name: str = "Иванова") -> None:
    page = client.get("/console/login")
    r = client.post(
        "/console/login", data={"token": token, "name": name, "csrf": _csrf_of(page.text)}
    )
    assert r.status_code == 303, r.text


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    """The tokens the console apps are configured with, by role."""
    return {"operator": OPERATOR_TOKEN, "admin": ADMIN_TOKEN}


@pytest.fixture(scope="session")
def seed() -> Callable[..., list[dict]]:
    """`seed(client, appeals=None)`: predict appeals through the API, wait for the store."""
    return _seed


@pytest.fixture(scope="session")
def csrf_of() -> Callable[[str], str]:
    """`csrf_of(html)`: the CSRF token of a page's forms."""
    return _csrf_of


@pytest.fixture(scope="session")
def sign_in() -> Callable[..., None]:
    """`sign_in(client, token=OPERATOR_TOKEN, name=...)`: through the login form."""
    return _sign_in


@pytest.fixture(scope="session")
def strict_model_dir(demo_train, tmp_path_factory) -> Path:
    """The demo model of a centre that checks nearly everything: the queue has every kind
    of appeal in it (the review thresholds are read off the curve for 99.9 % accuracy)."""
    model = train_model(demo_train, params={"review_accuracy": 0.999}, show_progress=False)
    return model.save(tmp_path_factory.mktemp("strict-model"))


@pytest.fixture
def app_factory(tmp_path, strict_model_dir) -> Callable[..., AbstractContextManager[TestClient]]:
    """`with app_factory(**settings) as client:` — a fresh app and store per test."""

    def make(**overrides) -> AbstractContextManager[TestClient]:
        return running(console_settings(tmp_path, strict_model_dir, **overrides))

    return make


@pytest.fixture
def console(app_factory) -> Iterator[TestClient]:
    """An app with both tokens and the demo appeals predicted."""
    with app_factory() as client:
        _seed(client)
        yield client
