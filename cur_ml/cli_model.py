"""`cur-ml model ...`: commands on a model directory (adopting a model by signing it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["model_app"]

model_app = typer.Typer(no_args_is_help=True, help="Model directories: sign a trusted model.")


@model_app.command("sign")
def sign(
    directory: Annotated[Path, typer.Argument(help="model directory (manifest.json + model file)")],
) -> None:
    """Sign DIR's manifest with the model key, adopting it as trusted (an older or bundled
    model, one from another machine). Only for a model you trust: its file is a pickle, which
    runs code when loaded. Checks first that the file matches the manifest's sha256."""
    from cur_ml.model.bundle import sign_directory
    from cur_ml.model.signing import model_key
    from cur_ml.settings import Settings

    manifest = sign_directory(directory, model_key(Settings(), create=True))
    typer.echo(
        json.dumps(
            {
                "signed": str(directory / "manifest.json"),
                "model_version": manifest.get("version"),
                "model_file": manifest.get("model_file"),
                "model_sha256": manifest.get("model_sha256"),
                "scikit-learn": (manifest.get("libraries") or {}).get("scikit-learn"),
            },
            ensure_ascii=False,
            indent=2,
        )
    )
