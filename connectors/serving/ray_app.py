"""The built-in ONNX runner as a Ray Serve application (runs inside a Ray cluster, never in the gateway).

The RAY connector ships this package to the cluster (a runtime-env package uploaded through the
dashboard) and names ``aicn_serving.ray_app:build`` as the application's import path. Each Serve
replica loads the model once, as ``onnx_server.py`` does, and answers the same two routes under the
application's route prefix: ``GET .../health`` and ``POST .../invoke``.

The deployment's ``user_config`` holds the gateway's list of replica references (one per metered
replica): changing it is one of Serve's light updates, so scaling never restarts a running replica.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import serve  # type: ignore[import-not-found]
from starlette.responses import JSONResponse

from .onnx_server import MAX_BODY_BYTES, Model, find_model


@serve.deployment(name="onnx")
class OnnxReplica:
    def __init__(self, model_dir: str) -> None:
        try:
            self.model = Model(find_model(Path(model_dir)))
        except SystemExit as missing:  # the runner's own way of saying MODEL_NOT_FOUND
            raise RuntimeError(str(missing)) from None

    def reconfigure(self, config: dict[str, Any]) -> None:
        """The gateway's replica list changed: nothing for a replica to do."""

    async def __call__(self, request: Any) -> JSONResponse:
        path = str(request.url.path).rstrip("/")
        if request.method == "GET":
            if path.endswith("/health"):
                return JSONResponse({"status": "ok", "inputs": [spec.name for spec in self.model.inputs]})
            return JSONResponse({"error": "not found"}, status_code=404)
        if not path.endswith("/invoke"):
            return JSONResponse({"error": "not found"}, status_code=404)
        data = await request.body()
        if len(data) > MAX_BODY_BYTES:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        try:
            return JSONResponse(self.model.run(body if isinstance(body, dict) else {"inputs": body}))
        except (ValueError, KeyError, TypeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except Exception as error:  # onnxruntime's own errors: the model refused the input
            return JSONResponse({"error": f"{type(error).__name__}: {error}"}, status_code=422)


def build(args: dict[str, Any]) -> Any:
    """The application builder Serve calls with the application's ``args``."""
    return OnnxReplica.bind(str(args["model_dir"]))  # type: ignore[attr-defined]
