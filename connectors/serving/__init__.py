"""Programs a center runs to serve a model (started as a replica's command, never imported by the gateway)."""

from __future__ import annotations

from pathlib import Path

#: the built-in runner for ONNX models (``python onnx_server.py --port P --model-dir D``)
ONNX_SERVER = Path(__file__).with_name("onnx_server.py")
