"""The `cur-ml` command as other programs call it (CONTRACT section 2), in real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cur_ml.model.bundle import MODEL_FILE

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, timeout=300)


def test_train_then_evaluate(demo_path, tmp_path):
    out = tmp_path / "model"
    done = run("train", "--data", str(demo_path), "--split", "train", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == 790
    assert (out / "manifest.json").exists() and (out / MODEL_FILE).exists()

    done = run("evaluate", "--model", str(out), "--data", str(demo_path), "--split", "dev")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    for head in ("category", "reason", "urgency", "agency"):
        assert 0.0 <= metrics[head]["accuracy"] <= 1.0
        assert 0.0 <= metrics[head]["macro_f1"] <= 1.0
    assert "recall_high" in metrics["urgency"]
    # Every channel is scored; the top level is the portal form's, as before profiles.
    assert set(metrics["profiles"]) == {"portal", "geo", "text", "social"}
    assert metrics["profile"] == "portal"
    assert metrics["reason"] == metrics["profiles"]["portal"]["reason"]
    for profile in metrics["profiles"]:
        report = out / "reports" / "dev" / profile
        assert (report / "report.md").exists()
        for head in ("category", "reason", "urgency", "agency"):
            assert (report / f"confusion_{head}.png").stat().st_size > 1000


def test_evaluate_one_profile(demo_model_dir, demo_path, tmp_path):
    args = ["--model", str(demo_model_dir), "--data", str(demo_path), "--split", "dev"]
    done = run("evaluate", *args, "--profile", "text", "--report", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["profile"] == "text" and set(metrics["profiles"]) == {"text"}
    # A bare text never has a place: every agency that needs a district is out of reach.
    assert metrics["agency"]["accuracy"] < 0.5
    bad = run("evaluate", *args, "--profile", "fax")
    assert bad.returncode == 2
    assert "unknown profile 'fax'" in bad.stderr and "Traceback" not in bad.stderr


def test_predict_keeps_order_and_shape(demo_model_dir):
    lines = [
        {"id": "a", "text": "Не работает лифт в подъезде"},
        {"id": 2, "text": "мусор во дворе не вывозят неделю", "district": "Невский"},
        "not json at all",
        {"text": "яма на дороге", "source": "vk", "unknown_field": 1},
        {"id": 5},
    ]
    stdin = (
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
        + "\n"
    )
    done = run(
        "predict", "--model", str(demo_model_dir), "--input", "-", "--output", "-", stdin=stdin
    )
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == 5
    assert [o["id"] for o in out] == ["a", 2, None, None, None]
    assert "not valid JSON" in out[2]["error"] and "line 3" in out[2]["error"]
    assert "'text' is missing" in out[4]["error"]
    for o in (out[0], out[1], out[3]):
        assert list(o)[:5] == ["id", "category", "reason", "urgency", "agency"]
        assert o["urgency"] in {"high", "medium", "low"}
        assert set(o["confidence"]) == {"category", "reason", "urgency", "agency"}
        assert isinstance(o["needs_review"], bool)
        assert o["model_version"]
    assert "2 input line(s) could not be used" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "--model", "/no/such/model", "--input", "-"], "manifest.json is missing"),
        (["evaluate", "--model", "/no/such/model", "--data", "x.csv"], "manifest.json is missing"),
        (["train", "--data", "/no/such.csv", "--out", "/tmp/x"], "data file not found"),
        (["train", "--data", "/tmp", "--out", "/tmp/x"], "is a directory"),
        (["train", "--data", "pyproject.toml", "--out", "/tmp/x"], "unsupported file type"),
    ],
)
def test_bad_arguments_exit_with_one_line(args, message):
    done = run(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_columns_and_unknown_split(tmp_path, demo_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,мусор\n", encoding="utf-8")
    done = run("train", "--data", str(bad), "--out", str(tmp_path / "m"))
    assert done.returncode != 0 and "missing column(s) category, reason, urgency, agency" in (
        done.stderr
    )
    done = run("train", "--data", str(demo_path), "--split", "nosuch", "--out", str(tmp_path))
    assert done.returncode != 0 and "no rows with split == 'nosuch'" in done.stderr


def test_training_into_the_served_directory_makes_the_champion(demo_path, tmp_path):
    """The model directory is a cache of `models:/cur-ml-spb@champion`: training into it puts
    the model in service, so the alias follows; training elsewhere only registers."""
    import os

    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    served = tmp_path / "models" / "default"
    env = {
        **os.environ,
        "CUR_ML_MODEL_DIR": str(served),
        "CUR_ML_MLFLOW_ENABLED": "true",
        "CUR_ML_MLFLOW_TRACKING_URI": tracking,
        "CUR_ML_MLFLOW_ARTIFACT_LOCATION": (tmp_path / "artifacts").as_uri(),
    }

    def train(out) -> dict:
        done = subprocess.run(
            [*CLI, "train", "--data", str(demo_path), "--split", "train", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = train(served)
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    assert first["champion"] is True
    champion = client.get_model_version_by_alias("cur-ml-spb", "champion")
    assert str(champion.version) == first["mlflow"]["registered_version"]

    other = train(tmp_path / "elsewhere")
    assert other["champion"] is False
    assert other["mlflow"]["registered_version"] != str(champion.version)
    assert client.get_model_version_by_alias("cur-ml-spb", "champion").version == champion.version
