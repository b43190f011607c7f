"""How a model is served: its serving argv (given, the model's own, or the built-in ONNX runner)
and the directory its replicas read it from. Nothing here ever loads a model."""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from connectors.serving import onnx_runner
from resolvers.common.errors import UserErrorData
from store.tables import ModelRow

PORT = "{port}"
MODEL_DIR = "{model_dir}"
MAX_ARGV = 1000
MAX_ARG_LENGTH = 10_000


@dataclass(frozen=True)
class ServingPlan:
    command: list[str]
    model_dir: str
    builtin: bool


def artifact_path(uri: str) -> Path | None:
    """The local file or directory a model's URI names (a path or a file:// URI); None for anything else."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _is_onnx(model: ModelRow, path: Path) -> bool:
    if (model.framework or "").strip().lower() == "onnx" or path.suffix == ".onnx":
        return True
    return path.is_dir() and any(path.rglob("*.onnx"))


def builtin_command(python: str | None = None) -> list[str]:
    return [python or sys.executable, str(onnx_runner()), "--port", PORT, "--model-dir", MODEL_DIR]


def serving_plan(model: ModelRow, command: Sequence[str] | None, python: str | None = None) -> ServingPlan | UserErrorData:
    """``python``: the built-in runner's interpreter (``[services] python``, checked at start); None: the gateway's."""
    """The argv template and model directory for ``model``, or why it cannot be served."""
    path = artifact_path(model.uri)
    if path is None or not path.exists():
        return UserErrorData(
            f"the model's artifact {model.uri!r} is not a file or directory the centers can read", "MODEL_ARTIFACT_MISSING", ("modelId",)
        )
    model_dir = str(path)
    given = list(command or model.serving_command or [])
    if given:
        if not given[0].strip() or len(given) > MAX_ARGV or any(len(arg) > MAX_ARG_LENGTH or "\x00" in arg for arg in given):
            return UserErrorData(
                "the serving command must be an argv list whose first item names a program", "INVALID_COMMAND", ("command",)
            )
        return ServingPlan(given, model_dir, builtin=False)
    if not _is_onnx(model, path):
        message = "the model has no serving command and no built-in format (ONNX): give deployModel a `command`"
        return UserErrorData(message, "MODEL_NOT_SERVABLE", ("modelId",))
    if python is None and importlib.util.find_spec("onnxruntime") is None:
        return UserErrorData("the built-in ONNX runner needs onnxruntime: install aicn[onnx]", "MODEL_NOT_SERVABLE", ("modelId",))
    return ServingPlan(builtin_command(python), model_dir, builtin=True)


def fill(command: Sequence[str], values: Mapping[str, str]) -> list[str]:
    filled: list[str] = []
    for argument in command:
        for placeholder, value in values.items():
            argument = argument.replace(placeholder, value)
        filled.append(argument)
    return filled


def free_port() -> int:
    """A port free on loopback now (the replica binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
