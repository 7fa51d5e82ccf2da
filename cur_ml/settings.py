"""All configuration in one place: environment variables prefixed `CUR_ML_`, or a `.env` file."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "MIN_TOKEN_CHARS",
    "REGION_CODE",
    "REPO_ROOT",
    "TOKEN_SETTINGS",
    "Settings",
    "is_loopback",
]

#: Checkout root (the package is installed in editable mode from it).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Shortest bearer token accepted: a guessable token is no protection.
MIN_TOKEN_CHARS = 24
#: The settings that hold bearer tokens (each refused at start when shorter than the minimum).
TOKEN_SETTINGS = ("predict_token", "operator_token", "admin_token", "metrics_token")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Settings that may hold `{region}`, filled in for the region the settings are scoped to.
_REGION_TEMPLATED = ("model_dir", "model_uri", "demo_data", "base_data")
#: A region (tenant) code: short, lowercase, safe in a path and a registry name.
REGION_CODE = re.compile(r"^[a-z][a-z0-9_]{1,15}$")


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (a host name other than `localhost`
    counts as public: what it resolves to may change)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Settings of the command line and the service; passed down, never read elsewhere."""

    # hide_input_in_errors: a refused token must never be printed with its error.
    model_config = SettingsConfigDict(
        env_prefix="CUR_ML_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # --- regions (tenants) ------------------------------------------------------------
    #: The deployment's default region: an appeal without `region` belongs to it.
    region: str = "spb"
    #: Every region served (JSON list, e.g. `["spb","krd"]`); the default one is always in.
    regions: list[str] = []
    #: Models loaded at once may take this many MiB in all; the least recently used region's
    #: model is unloaded above it (loaded again on its next request). 0: no limit.
    model_memory_mb: float = Field(0.0, ge=0)
    #: A region's model unused this many minutes is unloaded (0: never; the default region's
    #: model stays loaded in any case).
    model_idle_minutes: float = Field(0.0, ge=0)

    #: Model directory; `{region}` in it stands for the region code. Without `{region}` it is
    #: the default region's, and another region's is its sibling named by the code.
    model_dir: Path = REPO_ROOT / "models" / "{region}"
    #: Serve from the MLflow registry, e.g. `models:/cur-ml-{region}@champion` (`{region}`:
    #: each region its own registered model `cur-ml-<region>`): resolved into
    #: `model_dir` (a cache, downloaded only when the alias moved) at start, on every reload
    #: and every `registry_poll_seconds`.
    model_uri: str | None = None
    #: Key of the HMAC-SHA256 that signs every model manifest (at least 32 characters); a
    #: model whose signature does not verify is refused before its pickle is read.
    model_key: SecretStr | None = None
    #: Where the key is kept when `model_key` is unset: created (32 random bytes as hex, mode
    #: 0600) by the first `train` / `serve` that needs it; keep it outside the model directory.
    model_key_file: Path = REPO_ROOT / "var" / "model.key"
    #: Demo appeals a region's first model is trained on when it has none; `{region}` stands
    #: for the code (the default region without a folder of its own: datasets/demo).
    demo_data: Path = REPO_ROOT / "datasets" / "demo_{region}" / "appeals.csv"
    #: Data of the notebooks: `auto` (../shared/datasets/spb when it is there, else the demo
    #: data), `demo`, or a directory holding appeals and corrections files.
    notebook_data: str = "auto"
    max_text_chars: int = 20_000

    # --- MLflow -----------------------------------------------------------------
    #: Tracking and registry store; a local SQLite file by default, or http://server:5000.
    mlflow_tracking_uri: str = f"sqlite:///{REPO_ROOT / 'var' / 'mlflow.db'}"
    #: Where a new experiment keeps its artifacts (None: MLflow's default for the URI).
    mlflow_artifact_location: str | None = (REPO_ROOT / "var" / "mlartifacts").as_uri()
    mlflow_experiment: str = "cur-ml"
    #: Record runs in MLflow at all (tests of unrelated parts switch it off).
    mlflow_enabled: bool = True

    # --- retraining ---------------------------------------------------------------
    #: Labelled base data of retraining: the appeals the corrections refer to (required:
    #: `cur-ml retrain` refuses without it; `--base-data` names it per run); `{region}` in a
    #: path stands for the region code of the job.
    base_data: list[Path] = []
    #: Rows of the base files retraining uses (files without a `split` column: all rows).
    base_split: str | None = "train"
    #: The holdout both champion and challenger are judged on: the newest weeks of the base
    #: data holding at least this many appeals (never more than `holdout_max_fraction`).
    holdout_min_rows: int = Field(2_000, ge=1)
    holdout_max_fraction: float = Field(0.2, gt=0, lt=1)
    #: Significance level of the gate's paired tests (McNemar, bootstrap intervals).
    gate_alpha: float = Field(0.05, gt=0, lt=1)
    #: Paired bootstrap resamples of macro-F1 and recall of `high`, and their seed.
    gate_resamples: int = Field(1_000, ge=100)
    gate_seed: int = 0
    #: Cost of a missed `high` appeal in false alarms: sets the urgency operating point that
    #: training reads off its calibration rows (higher: more recall of `high`, less precision).
    high_miss_cost: float = Field(4.0, gt=0)
    #: Accuracy the appeals routed without review should reach; the review thresholds are
    #: read off the coverage/accuracy curve of the calibration rows to meet it.
    review_accuracy: float = Field(0.9, gt=0, le=1)
    #: Weight of a corrected appeal in training relative to an uncorrected one.
    corrected_weight: float = 2.0
    #: Start a retrain by itself after this many new corrections (0: only on request).
    retrain_after_corrections: int = 0
    #: `cur-ml worker`: seconds between looks at the job queue, between heartbeats of a
    #: running job, and without a heartbeat before a running job counts as dead (failed).
    worker_poll_seconds: float = Field(5.0, gt=0)
    worker_heartbeat_seconds: float = Field(10.0, gt=0)
    worker_stale_seconds: float = Field(120.0, gt=0)
    #: With CUR_ML_MODEL_URI an alias (`models:/cur-ml-{region}@champion`): seconds between the
    #: service's looks at where the alias points (0: only at start and on reload).
    #: Each look waits this long ±20% (jitter: replicas do not all ask at once), so a
    #: promotion is served everywhere within 1.2 times this.
    registry_poll_seconds: float = Field(10.0, ge=0)

    # --- HTTP service (`cur-ml serve`) ---------------------------------------------
    #: Where predictions (and, later, corrections) are recorded; SQLite file by default.
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'cur_ml.sqlite3'}"
    #: Bearer tokens per role, 24 characters at least (an empty one counts as unset); an unset
    #: predict token leaves predict open (refused off loopback unless `allow_open_predict`),
    #: unset operator/admin tokens disable those routes (the admin token passes every check).
    #: The operator and admin tokens act for every region of the deployment: personal
    #: accounts (`cur-ml users add --region R`) are how regions are kept apart.
    predict_token: SecretStr | None = None
    operator_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    #: Let `serve` bind a non-loopback host with no predict token (a warning at every start).
    allow_open_predict: bool = False
    #: Bearer token of the Prometheus scraper for `/metrics` (the admin token passes too).
    metrics_token: SecretStr | None = None
    #: Whether `/metrics` needs a token; None: only when `host` is not a loopback address.
    metrics_require_token: bool | None = None
    #: A console session ends after this many minutes without a page view (and after 12 h in
    #: any case); sign-out and revoking the account end it at once.
    session_idle_minutes: float = Field(60.0, gt=0)
    #: Failed sign-ins or bearer checks allowed per client address and per account within
    #: `auth_failure_window_seconds`; the next is answered 429 with Retry-After.
    auth_failure_limit: int = Field(5, ge=1)
    auth_failure_window_seconds: float = Field(60.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    #: Where the workers of `serve` (more than one) keep their metrics files for `/metrics`
    #: (PROMETHEUS_MULTIPROC_DIR; emptied at every start); None: a temporary directory.
    metrics_dir: Path | None = None
    #: Most characters of text one `POST /v1/predict` may carry in all (422 above it): a request
    #: of unseen words costs seconds, and single-appeal callers would wait behind it.
    max_request_chars: int = Field(200_000, ge=1)
    #: A predict request that waited longer than this for a worker thread (seconds since it
    #: arrived) is answered 503 `busy` with Retry-After instead of being predicted: an
    #: overloaded replica sheds load (a load balancer retries it on another replica) rather
    #: than answering everything after its callers gave up. 0: never.
    predict_queue_seconds: float = Field(3.0, ge=0)
    #: Most appeals one `POST /v1/predict` may carry.
    max_batch: int = Field(1_000, ge=1)
    #: Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1)
    #: Merge requests that arrive while a prediction runs into one `predict` call (throughput).
    coalesce_predictions: bool = True
    #: Requests with more characters of text than this take the large lane: predicted one at
    #: a time and in chunks, so they never hold single-appeal requests up.
    large_request_chars: int = Field(4_000, ge=1)
    #: Most characters of text in one `predict` call of the large lane (one appeal at least).
    large_chunk_chars: int = Field(10_000, ge=1)
    #: Large requests that may wait while one is predicted; more are answered 503 `busy`.
    large_queue: int = Field(8, ge=0)
    #: Predict the large lane in a child process at lower CPU priority (started with the first
    #: large request); False: in the request's thread, letting small requests go first.
    large_lane_process: bool = True
    #: Seconds a thread may keep the GIL while another waits (`sys.setswitchinterval`;
    #: Python's default is 0.005): shorter lets a small request through a long one sooner.
    gil_switch_interval: float = Field(0.005, gt=0)
    #: Seconds between checks of the model directory's manifest.json (0: never; reload by hand).
    model_poll_seconds: float = Field(3.0, ge=0)
    #: Predictions waiting to be written before requests start to wait for the store.
    store_queue_size: int = Field(10_000, ge=1)
    #: Most predictions written in one INSERT.
    store_batch_rows: int = Field(2_000, ge=1)
    #: Seconds a store health verdict is reused (`/readyz`, predict's fail-fast) before the
    #: store is probed again (0: probe on every call).
    store_check_seconds: float = Field(1.0, ge=0)
    log_level: str = "INFO"
    #: One JSON object per log line (False: plain text, for a terminal).
    log_json: bool = True

    # --- operator console: working as a team ---------------------------------------
    #: Minutes an opened appeal stays claimed by its operator («Следующее» skips it for others).
    claim_minutes: float = Field(15.0, gt=0)
    #: Minutes an operator may undo their latest corrections of an appeal («Проверенные мной»).
    undo_minutes: float = Field(10.0, gt=0)
    #: Lemma-set Jaccard similarity from which pending appeals count as near-identical for a
    #: bulk accept (the same text, give or take case and punctuation, always does).
    near_duplicate_similarity: float = Field(0.8, gt=0, le=1)

    @field_validator(*TOKEN_SETTINGS, mode="after")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty token counts as unset
        length = len(value.get_secret_value())
        if length < MIN_TOKEN_CHARS:
            raise ValueError(
                f"a token needs at least {MIN_TOKEN_CHARS} characters (this one has {length}); "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("region", mode="after")
    @classmethod
    def _region_code(cls, value: str) -> str:
        if not REGION_CODE.match(value):
            raise ValueError(f"{value!r} is not a region code like spb or krd")
        return value

    @field_validator("regions", mode="after")
    @classmethod
    def _region_codes(cls, value: list[str]) -> list[str]:
        bad = [code for code in value if not REGION_CODE.match(code)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a region code ({REGION_CODE.pattern})")
        return list(dict.fromkeys(value))

    # What model_dir, model_uri, demo_data and base_data were set to, `{region}` unfilled:
    # the fields themselves always hold the values of `region` (see `for_region`).
    _templates: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _fill_region(self) -> Settings:
        if not self._templates:
            self._templates = {name: getattr(self, name) for name in _REGION_TEMPLATED}
            self._templates["default_region"] = self.region
        for name, value in self._region_values(self.region).items():
            object.__setattr__(self, name, value)
        return self

    def _region_values(self, region: str) -> dict[str, Any]:
        """model_dir, model_uri, demo_data and base_data of `region`, from the templates."""
        template = self._templates

        def fill(value: Any) -> str:
            return str(value).replace("{region}", region)

        def data(value: Any) -> Path:
            """A data file of the region; spb's demo files live in datasets/demo (written
            before regions), not datasets/demo_spb."""
            path = Path(fill(value))
            if region == "spb" and not path.exists() and "demo_{region}" in str(value):
                return Path(str(value).replace("demo_{region}", "demo"))
            return path

        model_dir = Path(fill(template["model_dir"]))
        if "{region}" not in str(template["model_dir"]) and region != self.region:
            model_dir = model_dir.parent / region  # the default region's sibling
        uri = template["model_uri"]
        return {
            "model_dir": model_dir,
            "model_uri": fill(uri) if uri else None,
            "demo_data": data(template["demo_data"]),
            "base_data": [data(path) for path in template["base_data"]],
        }

    @property
    def default_region(self) -> str:
        """The deployment's default region (`region` of a copy scoped to another one is not)."""
        return self._templates.get("default_region", self.region)

    def all_regions(self) -> list[str]:
        """The regions served: the default one first."""
        first = self.default_region
        return [first, *(code for code in self.regions if code != first)]

    def for_region(self, region: str | None = None) -> Settings:
        """These settings as one region sees them (its model directory, registry URI, demo
        and base data): code handed the copy needs to know nothing of other regions."""
        if region is None or region == self.region:
            return self
        scoped = self.model_copy(update={"region": region, **self._region_values(region)})
        scoped._templates = dict(self._templates)
        return scoped

    @property
    def registered_model(self) -> str:
        """The region's model in the MLflow registry (aliases `champion`, `challenger`)."""
        return f"cur-ml-{self.region}"

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(_LOG_LEVELS).lower()}")
        return value.upper()

    def metrics_locked(self) -> bool:
        """Whether `/metrics` needs a bearer token (by default: when bound off loopback)."""
        if self.metrics_require_token is None:
            return not is_loopback(self.host)
        return self.metrics_require_token

    def training_params(self) -> dict[str, float]:
        """The model parameters that are settings (passed to `AppealClassifier`)."""
        return {"high_miss_cost": self.high_miss_cost, "review_accuracy": self.review_accuracy}
