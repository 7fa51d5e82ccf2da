"""nginx in front of the replicas: its configuration, rendered into `<state>/nginx/`, and the
command that runs Debian's nginx with it (in the foreground, under the supervisor; not the
system's nginx service, whose configuration and pid file stay untouched)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import jinja2

from cur_ml.deploy.config import ClusterConfig, ClusterError
from cur_ml.settings import REPO_ROOT

__all__ = [
    "COMPOSE_CONFIG",
    "NGINX",
    "check_config",
    "nginx_argv",
    "render_compose_config",
    "render_config",
    "write_config",
]

#: Debian's package (`apt-get install nginx`).
NGINX = "/usr/sbin/nginx"

_TEMPLATE = """\
# {{ header }}
{%- if user %}
# {{ user_why }}
user {{ user }};
{%- endif %}
worker_processes 1;
pid {{ pid }};
error_log {{ error_log }} warn;

events {
    worker_connections 1024;
}

http {
{%- if temp %}
    client_body_temp_path {{ temp }}/body;
    proxy_temp_path {{ temp }}/proxy;
    fastcgi_temp_path {{ temp }}/fastcgi;
    uwsgi_temp_path {{ temp }}/uwsgi;
    scgi_temp_path {{ temp }}/scgi;
{%- endif %}

    log_format upstream '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                        'upstream=$upstream_addr upstream_status=$upstream_status '
                        'request_time=$request_time upstream_time=$upstream_response_time';
    access_log {{ access_log }} upstream;

    # The API's own limit (CUR_ML_MAX_BODY_BYTES, 64 MiB) decides; nginx must not cut first.
    client_max_body_size 64m;

    upstream cur_ml_replicas {
        # Passive health checks: a replica that failed max_fails times within fail_timeout
        # gets no requests for fail_timeout, then one request tries it again (a restarted
        # replica rejoins by itself).
{%- for server in servers %}
        server {{ server }} max_fails=2 fail_timeout=5s;
{%- endfor %}
        # Connections to the replicas are kept open and reused (HTTP/1.1, see below).
        keepalive 32;
    }

    server {
        listen {{ listen }};
        server_name localhost;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 2s;
        # A large batch may predict for a long while: the API limits its size, not nginx.
        proxy_read_timeout 120s;
        proxy_send_timeout 120s;
        proxy_next_upstream_tries 2;
        # Which replica answered (both, if the first failed): for the drill and for people.
        add_header X-Upstream $upstream_addr always;

        # Predict may go to the other replica after the first failed or answered 502/503,
        # even though it is a POST (non_idempotent): a prediction is stored only when it is
        # answered, so an attempt that got no answer left nothing a caller holds an id of;
        # a retry costs CPU, never a duplicate the caller sees. A replica still loading its
        # model answers 503 and the other one takes the request.
        location = /v1/predict {
            proxy_pass http://cur_ml_replicas;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        }

        # Everything else, corrections above all: a POST is retried only when it never
        # reached a replica (`error` before the request was sent: connection refused or
        # reset), never after it was sent, since the first replica may have stored it.
        # GETs (queues, /readyz, the console's pages) are also retried after a timeout.
        location / {
            proxy_pass http://cur_ml_replicas;
            proxy_next_upstream error timeout;
        }
    }
}
"""


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may walk down to `path` (o+x on every folder)."""
    return all(folder.stat().st_mode & 0o001 for folder in (path, *path.parents))


def _worker_user(state_dir: Path) -> tuple[str | None, str]:
    """The `user` directive's value and why: none when nginx does not start as root (its
    workers are then the caller's user); else `nobody` when it can reach the state
    directory, or the directory's owner when it cannot (a private temporary directory)."""
    if os.geteuid() != 0:
        return None, ""
    import grp
    import pwd

    if _reachable_by_others(state_dir):
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
        return f"nobody {group}", "Started as root: the workers run unprivileged."
    owner = pwd.getpwuid(state_dir.stat().st_uid).pw_name
    return owner, (
        "Started as root in a state directory other users cannot reach: the workers run as\n"
        "# its owner, so they can write their temporary files under it."
    )


def prefix_dir(config: ClusterConfig) -> Path:
    return config.state_dir / "nginx"


def _render(**values: object) -> str:
    return jinja2.Template(_TEMPLATE, keep_trailing_newline=True).render(**values)


def render_config(config: ClusterConfig) -> str:
    """nginx.conf of `config`: nginx on its port, the replicas behind it."""
    prefix = prefix_dir(config)
    user, user_why = _worker_user(config.state_dir)
    return _render(
        header=f"Written by `deploy/cluster up`: the cluster's load balancer ({config.nginx_url}). "
        "Edits are lost at\n# the next `up`; change cur_ml/deploy/nginx.py instead.",
        user=user,
        user_why=user_why,
        pid=prefix / "nginx.pid",
        error_log=prefix / "error.log",
        access_log=prefix / "access.log",
        temp=prefix / "tmp",
        listen=f"127.0.0.1:{config.nginx_port}",
        servers=[f"127.0.0.1:{port}" for port in config.replica_ports],
    )


#: Where deploy/docker-compose.yml mounts it from (rendered from the same template).
COMPOSE_CONFIG = REPO_ROOT / "deploy" / "nginx.compose.conf"


def render_compose_config(replicas: int = 2) -> str:
    """The nginx.conf of deploy/docker-compose.yml: the local cluster's, with the compose
    services as upstreams (deploy/nginx.compose.conf holds it; a test keeps the two equal)."""
    return _render(
        header="deploy/docker-compose.yml's load balancer, rendered from cur_ml/deploy/nginx.py "
        "(`python -m\n# cur_ml.deploy compose-nginx > deploy/nginx.compose.conf`): "
        "the same as the local cluster's.",
        user="nginx",
        user_why="The official nginx image's unprivileged user.",
        pid="/tmp/nginx.pid",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        temp=None,
        listen="80",
        servers=[f"replica-{i + 1}:8000" for i in range(replicas)],
    )


def write_config(config: ClusterConfig) -> Path:
    """Write nginx.conf (and its directories) under the state directory; its path."""
    prefix = prefix_dir(config)
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(render_config(config), encoding="utf-8")
    return path


def nginx_binary() -> str:
    """Debian's nginx; ClusterError naming the package when it is missing."""
    found = NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")
    if not found:
        raise ClusterError(f"nginx is not installed ({NGINX} is missing): apt-get install nginx")
    return found


def nginx_argv(config: ClusterConfig) -> list[str]:
    """nginx in the foreground (the supervisor watches it) with the cluster's prefix and
    configuration; `-e` keeps even its first messages out of /var/log/nginx."""
    prefix = prefix_dir(config)
    return [
        nginx_binary(),
        "-p",
        str(prefix),
        "-c",
        str(prefix / "nginx.conf"),
        "-e",
        str(prefix / "error.log"),
        "-g",
        "daemon off;",
    ]


def check_config(config: ClusterConfig) -> None:
    """`nginx -t` on the written configuration; ClusterError with nginx's words if refused."""
    argv = [*nginx_argv(config)[:-2], "-t", "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise ClusterError(f"nginx refuses {argv[4]}: {done.stderr.strip()}")
