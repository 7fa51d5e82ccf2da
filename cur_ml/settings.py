"""All configuration in one place: environment variables prefixed `CUR_ML_`, or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["REPO_ROOT", "Settings"]

#: Checkout root (the package is installed in editable mode from it).
REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Settings of the command line and the service; passed down, never read elsewhere."""

    model_config = SettingsConfigDict(env_prefix="CUR_ML_", env_file=".env", extra="ignore")

    model_dir: Path = REPO_ROOT / "models" / "default"
    demo_data: Path = REPO_ROOT / "datasets" / "demo" / "appeals.csv"
    max_text_chars: int = 20_000
