"""The built-in runner: serve one ONNX model over HTTP with onnxruntime (the ``aicn[onnx]`` extra).

``python onnx_server.py --port P --model-dir D`` loads the one ``*.onnx`` file in D (or D itself
when it is a file) and answers:

* ``GET /health``: 200 once the model is loaded;
* ``POST /invoke`` with ``{"inputs": [[...], ...]}`` (or ``{"<input name>": [...], ...}``): each
  output of the model, by name, as JSON lists.

ONNX holds a graph of operators, no code: nothing in a model file runs as a program (a pickle
would). Standard library and onnxruntime only; HTTP/1.1 keep-alive so the gateway reuses connections.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 16 * 1024 * 1024


def find_model(model_dir: Path) -> Path:
    if model_dir.is_file():
        return model_dir
    found = sorted(model_dir.rglob("*.onnx"))
    if not found:
        raise SystemExit(f"MODEL_NOT_FOUND: no .onnx file in {model_dir}")
    return found[0]


class Model:
    def __init__(self, path: Path) -> None:
        import numpy
        import onnxruntime  # type: ignore[import-untyped]

        self.numpy = numpy
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # a replica is one device: its requests run side by side, not one across cores
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.outputs = [output.name for output in self.session.get_outputs()]

    def run(self, body: dict[str, Any]) -> dict[str, Any]:
        if "inputs" in body and len(self.inputs) == 1:
            feeds = {self.inputs[0].name: body["inputs"]}
        else:
            feeds = {spec.name: body[spec.name] for spec in self.inputs if spec.name in body}
        arrays = {}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise ValueError(f"missing input {spec.name!r}")
            dtype = self.numpy.int64 if "int64" in spec.type else self.numpy.float32
            arrays[spec.name] = self.numpy.asarray(feeds[spec.name], dtype=dtype)
        results = self.session.run(self.outputs, arrays)
        return {"outputs": {name: _plain(value) for name, value in zip(self.outputs, results, strict=True)}}


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def make_handler(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, {"status": "ok", "inputs": [spec.name for spec in model.inputs]})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, {"error": "the body is too large"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, {"error": "the body is not JSON"})
                return
            if self.path != "/invoke":
                self._answer(404, {"error": "not found"})
                return
            try:
                self._answer(200, model.run(body if isinstance(body, dict) else {"inputs": body}))
            except (ValueError, KeyError, TypeError) as error:
                self._answer(400, {"error": str(error)})
            except Exception as error:  # onnxruntime's own errors: the model refused the input
                self._answer(422, {"error": f"{type(error).__name__}: {error}"})

    return Handler


def check() -> int:
    """``--check``: this interpreter can run the runner (it read this file, and finds numpy and onnxruntime)."""
    import importlib.util

    missing = [name for name in ("numpy", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"missing {', '.join(missing)} (install aicn[onnx] for this interpreter)", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        return check()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    arguments = parser.parse_args(argv)
    model = Model(find_model(arguments.model_dir))
    server = ThreadingHTTPServer((arguments.host, arguments.port), make_handler(model))
    server.daemon_threads = True
    print(f"serving {arguments.model_dir} on {arguments.host}:{arguments.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
