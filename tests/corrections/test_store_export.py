"""`cur-ml store export corrections` writes what `cur-ml corrections import` reads: a history
made through the service (operator and admin corrections, rows derived from a reason, label
approvals with and without a correction, imported portal history) survives export → import
into an empty store → export, in CSV and in JSON Lines, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest
from app_support import PG_URL, fresh_schema
from corrections_support import ADM, DEMO, OP, predict
from sqlalchemy import select
from typer.testing import CliRunner

from cur_ml.cli import app
from cur_ml.data import load_appeals
from cur_ml.model.bundle import load_model
from cur_ml.retrain.approvals import LabelBook
from cur_ml.store import make_engine
from cur_ml.store.corrections import CorrectionRecord
from cur_ml.store.db import aware
from cur_ml.store.label_approvals import LabelApproval

APPEALS = [
    {"id": "a1", "text": "Во дворе не вывозят мусор, баки переполнены", "district": "Невский"},
    {"id": 2, "text": "Не работает лифт в подъезде третий день", "district": "Калининский"},
    {"text": "Яма на дороге у дома, машины объезжают", "district": "Приморский"},
]
NEW_AGENCY = "СПб ГБУ «Мостотрест»"


def cli(database_url: str, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"CUR_ML_DATABASE_URL": database_url})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def _post(client, items: list[dict], *, admin: bool = False) -> None:
    path = "/v1/admin/corrections" if admin else "/v1/corrections"
    r = client.post(path, json={"corrections": items}, headers=ADM if admin else OP)
    assert r.status_code == 201, r.text


def _make_history(client, book: LabelBook, store_url: str, tmp_path: Path) -> None:
    preds = predict(client, APPEALS)
    moving = next(
        r
        for r in sorted(book.category_of)
        if book.category_of[r] != preds[0]["category"] and book.urgency_of[r] != preds[0]["urgency"]
    )
    _post(
        client,
        [
            # A reason that moves category and urgency: two derived rows follow it.
            {"prediction_id": preds[0]["prediction_id"], "field": "reason", "value": moving,
             "operator": "Петрова", "comment": "", "idempotency_key": "op-1"},
            # An acceptance, with a comment in Russian, quotes and a line break.
            {"prediction_id": preds[1]["prediction_id"], "field": "agency",
             "value": preds[1]["agency"], "comment": 'ЖА «Калининского», см.\n"заявку"'},
        ],
    )  # fmt: skip
    _post(
        client,
        [{"prediction_id": preds[2]["prediction_id"], "field": "agency", "value": NEW_AGENCY,
          "operator": "admin-petrova", "allow_new_label": True, "idempotency_key": "new-1"}],
        admin=True,
    )  # fmt: skip
    r = client.post(
        "/v1/admin/labels",
        json={"field": "reason", "label": "Открыт люк", "approved_by": "Иванова"},
        headers=ADM,
    )
    assert r.status_code == 201, r.text
    # The portal's own history, in the five columns the importer always read.
    ids = list(load_appeals([DEMO]).frame["id"].astype(str)[:2])
    portal = tmp_path / "portal.csv"
    portal.write_text(
        "appeal_id,at,field,old,new\n"
        f"{ids[0]},2021-03-01T10:00:00,reason,Яма,Открыт люк\n"
        f"{ids[1]},2021-03-02T11:30:00,agency,,Администрация Невского района\n"
        "not-in-the-data,2021-03-02T11:30:00,agency,,Администрация Невского района\n",
        encoding="utf-8",
    )
    summary = json.loads(cli(store_url, "corrections", "import", str(portal), "--data", str(DEMO)))
    assert (summary["stored"], summary["unknown_appeals"]) == (2, 1)


def _store_rows(url: str) -> dict[str, list[dict]]:
    """Every correction and approval as stored, in id order, without the store's ids."""
    engine = make_engine(url)
    out: dict[str, list[dict]] = {}
    with engine.connect() as conn:
        for table in (CorrectionRecord.__table__, LabelApproval.__table__):
            rows = conn.execute(select(table).order_by(table.c.id)).mappings().all()
            out[table.name] = [
                {
                    **{k: v for k, v in r.items() if k != "id"},
                    "created_at": aware(r["created_at"]).astimezone(UTC),
                }
                for r in rows
            ]
    engine.dispose()
    return out


@pytest.fixture(scope="module")
def book(model_a_dir) -> LabelBook:
    return LabelBook.of(load_model(model_a_dir))


@pytest.fixture
def empty_store(store_url, tmp_path):
    """Another empty store of the same kind as `store_url`."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    with fresh_schema(PG_URL) as url:
        yield url


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_import_export_is_lossless(app_on, book, store_url, empty_store, tmp_path, fmt):
    with app_on(database_url=store_url) as client:
        _make_history(client, book, store_url, tmp_path)
    first, second = tmp_path / f"first.{fmt}", tmp_path / f"second.{fmt}"
    cli(store_url, "store", "export", "corrections", "--format", fmt, "--out", str(first))

    summary = json.loads(cli(empty_store, "corrections", "import", str(first)))
    source = _store_rows(store_url)
    assert len(source["corrections"]) == 7  # 2 operator + 2 derived + 1 admin + 2 portal
    assert {r["source"] for r in source["corrections"]} == {"api", "derived", "admin", "import"}
    assert len(source["label_approvals"]) == 2
    assert summary == {
        "read": 9,
        "stored": 7,
        "already_there": 0,
        "unknown_appeals": 0,
        "bad_rows": 0,
        "approvals_stored": 2,
        "unknown_predictions": 5,  # the predictions themselves are in a backup, not here
    }
    cli(empty_store, "store", "export", "corrections", "--format", fmt, "--out", str(second))
    assert second.read_bytes() == first.read_bytes()
    assert first.stat().st_mode & 0o077 == 0  # operators' names and comments: owner only

    restored = _store_rows(empty_store)
    if fmt == "csv":  # CSV has one empty cell for an empty text and for none (documented)
        source["corrections"] = [
            {**r, "comment": r["comment"] or None} for r in source["corrections"]
        ]
    assert restored == source

    again = json.loads(cli(empty_store, "corrections", "import", str(first)))
    assert (again["stored"], again["already_there"], again["approvals_stored"]) == (0, 7, 0)


def test_export_refuses_an_existing_file_and_a_bad_format(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    out = tmp_path / "history.csv"
    out.write_text("kept")
    runner = CliRunner()
    env = {"CUR_ML_DATABASE_URL": url}
    cli(url, "corrections", "import", str(_empty_history(tmp_path)))  # creates the store
    refused = runner.invoke(app, ["store", "export", "corrections", "--out", str(out)], env=env)
    assert refused.exit_code != 0 and "exists" in str(refused.exception)
    assert out.read_text() == "kept"
    bad = runner.invoke(app, ["store", "export", "corrections", "--format", "xml"], env=env)
    assert bad.exit_code != 0 and "unknown format 'xml'" in str(bad.exception)
    cli(url, "store", "export", "corrections", "--out", str(out), "--force")
    assert out.read_text().splitlines() == [
        "appeal_id,at,field,old,new,prediction_id,operator,comment,source,idempotency_key,kind,region"
    ]


def _empty_history(tmp_path: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_text("appeal_id,at,field,old,new\n")
    return path
