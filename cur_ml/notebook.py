"""What every notebook starts with: where its data is, a scratch MLflow store, quiet output.

Notebooks never write to the configured tracking store (`var/mlflow.db` by default): their
runs, registered versions and aliases go to a store in a fresh temporary directory, so
running them cannot move anyone's `champion`.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from cur_ml.errors import DataError
from cur_ml.settings import REPO_ROOT, Settings

__all__ = ["SHARED_DATA", "NotebookData", "notebook_data", "quiet", "scratch_settings"]

#: The real St. Petersburg data, beside the checkout (CI and team machines have it).
SHARED_DATA = REPO_ROOT.parent / "shared" / "datasets" / "spb"


@dataclass(frozen=True)
class NotebookData:
    """The files a notebook reads, and whether they are the real data."""

    appeals: Path
    corrections: Path
    real: bool

    def __str__(self) -> str:
        kind = "real St. Petersburg data" if self.real else "bundled demo data"
        return f"{kind}: {self.appeals}"


def _files_in(directory: Path, real: bool) -> NotebookData:
    def first(stem: str) -> Path:
        for name in (f"{stem}.csv.gz", f"{stem}.csv"):
            if (directory / name).is_file():
                return directory / name
        raise DataError(f"no {stem}.csv or {stem}.csv.gz in {directory}")

    return NotebookData(first("appeals"), first("corrections"), real)


def notebook_data(settings: Settings | None = None) -> NotebookData:
    """The real data when ../shared/datasets/spb is there, else the demo data.

    `CUR_ML_NOTEBOOK_DATA` overrides: `demo` (what the test run uses, for speed) or a
    directory with appeals and corrections files.
    """
    settings = settings or Settings()
    choice = settings.notebook_data
    demo = _files_in(settings.demo_data.parent, real=False)
    if choice == "demo":
        return demo
    if choice == "auto":
        return _files_in(SHARED_DATA, real=True) if SHARED_DATA.is_dir() else demo
    directory = Path(choice)
    if not directory.is_dir():
        raise DataError(f"CUR_ML_NOTEBOOK_DATA={choice}: not auto, demo or a directory")
    return _files_in(directory, real=directory.resolve() == SHARED_DATA.resolve())


def scratch_settings(name: str, settings: Settings | None = None) -> tuple[Settings, Path]:
    """Settings whose MLflow store (runs, registry, artifacts) and model directory live in a
    new temporary directory; returns them and that directory."""
    settings = settings or Settings()
    scratch = Path(tempfile.mkdtemp(prefix=f"cur-ml-{name}-"))
    update = {
        "mlflow_enabled": True,
        "mlflow_tracking_uri": f"sqlite:///{scratch / 'mlflow.db'}",
        "mlflow_artifact_location": (scratch / "mlartifacts").as_uri(),
        "model_dir": scratch / "models" / "default",
    }
    return settings.model_copy(update=update), scratch


def quiet() -> None:
    """No progress bars, deprecation notes or INFO lines from libraries in notebook output.

    MLflow's own event stream ("Successfully registered model ...", INFO and WARNING lines)
    is switched off; its errors still raise.
    """
    warnings.filterwarnings("ignore")
    # Imported first: importing them switches MLflow's event stream back on.
    import mlflow.pyfunc
    import mlflow.types.responses  # noqa: F401
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    from mlflow.utils.logging_utils import disable_logging

    disable_logging()
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.set(False)  # downloads of registered models
    for name in ("mlflow", "alembic", "urllib3", "matplotlib", "cur_ml"):
        logging.getLogger(name).setLevel(logging.ERROR)
