"""What `deploy/cluster up` refuses before starting anything, its tokens file, and the nginx
configuration it writes (checked by nginx itself)."""

from __future__ import annotations

import os
import stat
from importlib.metadata import PackageNotFoundError

import pytest

from cur_ml.deploy import plan
from cur_ml.deploy.config import ClusterConfig, ClusterError
from cur_ml.deploy.nginx import NGINX, check_config, write_config
from cur_ml.deploy.tokens import load_tokens


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"db_prefix": "Cur-Ml"}, "--db-prefix 'Cur-Ml'"),
        ({"db_prefix": "x; drop database postgres"}, "--db-prefix"),
        ({"regions": ("spb", "Krasnodar")}, "'Krasnodar' is not a region code"),
        ({"regions": ()}, "name at least one region"),
        ({"replica_ports": (8801, 8801)}, "port 8801 is given to two processes"),
        ({"nginx_port": 70000}, "port 70000 is not in 1..65535"),
        ({"settings": {"CUR_ML_DATABASE_URL": "sqlite://"}}, "the cluster sets it itself"),
        ({"settings": {"PATH": "/tmp"}}, "only CUR_ML_* settings"),
    ],
)
def test_bad_cluster_options_are_refused_naming_the_option(tmp_path, options, says):
    with pytest.raises(ClusterError) as caught:
        ClusterConfig(state_dir=tmp_path, **options)
    assert says in str(caught.value)


def test_no_cluster_in_a_state_dir_says_how_to_make_one(tmp_path):
    with pytest.raises(ClusterError) as caught:
        ClusterConfig.load(tmp_path)
    assert "`deploy/cluster up` makes one" in str(caught.value)


def test_tokens_are_made_once_private_and_refused_when_others_may_read_them(tmp_path):
    path = tmp_path / "tokens.json"
    made = load_tokens(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_tokens(path) == made  # kept, never made again
    assert len(set(made.values())) == len(made)  # a key and four different tokens
    os.chmod(path, 0o644)
    with pytest.raises(ClusterError, match="may be read by others"):
        load_tokens(path)


def test_missing_mlflow_server_says_what_to_install(tmp_path, monkeypatch):
    def no_mlflow(name: str):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(plan, "distribution", no_mlflow)
    with pytest.raises(ClusterError) as caught:
        plan.mlflow_plan(ClusterConfig(state_dir=tmp_path))
    assert "pip install -e '.[mlflow-ui]' -c requirements.lock" in str(caught.value)


def test_written_nginx_config_passes_nginx_t(tmp_path):
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx not installed ({NGINX}; apt-get install nginx)")
    config = ClusterConfig(state_dir=tmp_path, replica_ports=(18801, 18802, 18803))
    path = write_config(config)
    check_config(config)  # raises with nginx's own words when refused
    text = path.read_text(encoding="utf-8")
    assert text.count("max_fails=2 fail_timeout=5s;") == 3
    predict = text.split("location = /v1/predict", 1)[1].split("}", 1)[0]
    assert "proxy_next_upstream error timeout http_502 http_503 non_idempotent;" in predict
    rest = text.split("location / {", 1)[1].split("}", 1)[0]
    assert "non_idempotent" not in rest  # corrections are never sent twice
