"""deploy/docker-compose.yml and its nginx configuration stay the local cluster's (they
cannot be run here: no Docker engine)."""

from __future__ import annotations

from cur_ml.deploy.nginx import COMPOSE_CONFIG, render_compose_config
from cur_ml.deploy.tokens import TOKEN_ENV

COMPOSE = COMPOSE_CONFIG.parent / "docker-compose.yml"


def test_compose_nginx_config_is_rendered_from_the_local_template():
    assert COMPOSE_CONFIG.read_text(encoding="utf-8") == render_compose_config(), (
        "deploy/nginx.compose.conf is stale: python -m cur_ml.deploy compose-nginx > "
        "deploy/nginx.compose.conf"
    )


def test_compose_hands_every_secret_to_the_replicas():
    text = COMPOSE.read_text(encoding="utf-8")
    for setting in TOKEN_ENV.values():
        assert f"{setting}: ${{{setting}:?" in text, setting
