"""A real cluster on loopback (`deploy/cluster up|down|status`): PostgreSQL databases of its
own, an MLflow server, two API replicas and a worker kept alive by a supervisor, nginx in front.

Modules: `config` (what the cluster is: ports, databases, regions, paths), `tokens` (the
shared model key and bearer tokens), `postgres`, `nginx` (its configuration), `plan` (the
command line and environment of every process), `supervisor` (keeps them running), `probe`
(HTTP checks), `cluster` (up / down / status) and `cli`.
"""

from cur_ml.deploy.config import ClusterConfig, ClusterError

__all__ = ["ClusterConfig", "ClusterError"]
