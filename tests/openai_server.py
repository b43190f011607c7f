"""A small real OpenAI-compatible server for the tests (no weights can be downloaded here).

``train OUT_DIR``: learns a word bigram model from a corpus and writes ``OUT_DIR/ngram.json``
(plain JSON, never a pickle). ``serve --port P --model-dir D``: serves it with Starlette and
uvicorn as ``/v1/chat/completions``, ``/v1/completions`` (both streamed as server-sent events with
``"stream": true``), ``/v1/embeddings`` (bag of words over the model's vocabulary) and
``/v1/models``, each answer with the real token ``usage`` (tokens: words and punctuation).
``--mode error`` answers every POST with HTTP 500, ``--mode hang`` never answers one;
``--token-delay S`` waits S seconds between streamed tokens. A request that carries an
Authorization header is refused (400): the gateway must not pass its clients' tokens on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

CORPUS = """
the gateway places every job on a center . the center runs the job and the gateway meters it .
a model is trained by a job . the model is served by a service . the service answers every request .
every request is counted . every token is counted . the bill names the service and the tokens .
a replica serves the model . the gateway spreads the requests over the replicas .
"""
TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens_of(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def train(out_dir: Path, name: str) -> None:
    words = tokens_of(CORPUS)
    following: dict[str, Counter[str]] = defaultdict(Counter)
    for word, after in pairwise(words):
        following[word][after] += 1
    model = {
        "name": name,
        "vocabulary": sorted(set(words)),
        "following": {word: dict(counts) for word, counts in following.items()},
        "most_common": Counter(words).most_common(1)[0][0],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ngram.json").write_text(json.dumps(model))
    print(f"trained {name}: {len(model['vocabulary'])} words, {len(words)} tokens")


class Bigram:
    def __init__(self, document: dict[str, Any]) -> None:
        self.name: str = document["name"]
        self.vocabulary: list[str] = document["vocabulary"]
        self.index = {word: i for i, word in enumerate(self.vocabulary)}
        self.following: dict[str, dict[str, int]] = document["following"]
        self.most_common: str = document["most_common"]

    def generate(self, prompt: list[str], max_tokens: int) -> tuple[list[str], str]:
        """The most likely next words after the prompt's last one, until a full stop or ``max_tokens``."""
        word = prompt[-1] if prompt and prompt[-1] in self.following else self.most_common
        out: list[str] = []
        while len(out) < max_tokens:
            choices = self.following.get(word)
            if not choices:
                return out, "stop"
            word = max(sorted(choices), key=lambda candidate: choices[candidate])
            out.append(word)
            if word == ".":
                return out, "stop"
        return out, "length"

    def embed(self, text: str) -> list[float]:
        vector = [0.0] * len(self.vocabulary)
        for word in tokens_of(text):
            if word in self.index:
                vector[self.index[word]] += 1.0
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        return [value / norm for value in vector]


def join(words: list[str]) -> str:
    return "".join(word if not word[0].isalnum() else f" {word}" for word in words).strip()


def serve(port: int, model_dir: Path, mode: str, token_delay: float) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    model = Bigram(json.loads((model_dir / "ngram.json").read_text()))
    created = int(time.time())

    def error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)

    async def body_of(request: Request) -> dict[str, Any] | Response:
        if mode == "error":
            return error(500, "Traceback (most recent call last): secret internals", "server_error")
        if mode == "hang":
            await asyncio.sleep(3600)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "the body must be JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object", "invalid_request_error")
        if body.get("model") not in (None, model.name):
            return error(404, f"The model `{body.get('model')}` does not exist.", "invalid_request_error", "model_not_found")
        return body

    def usage(prompt: int, completion: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def complete(request: Request, chat: bool) -> Response:
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return error(400, "messages must be a non-empty list", "invalid_request_error")
            prompt = [token for message in messages for token in tokens_of(str(message.get("content") or ""))]
        else:
            prompt = tokens_of(str(body.get("prompt") or ""))
        words, finish = model.generate(prompt, int(body.get("max_tokens") or 16))
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:12]}"
        if not body.get("stream"):
            text = join(words)
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            kind = "chat.completion" if chat else "text_completion"
            answer = {"id": ident, "object": kind, "created": created, "model": model.name, "choices": [choice]}
            return JSONResponse({**answer, "usage": usage(len(prompt), len(words))})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, finish_reason: str | None, first: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
                if piece is not None:
                    delta["content"] = piece
                choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            else:
                choice = {"index": 0, "text": piece or "", "finish_reason": finish_reason, "logprobs": None}
            event = {"id": ident, "object": kind, "created": created, "model": model.name, "choices": [choice]}
            if include_usage:
                event["usage"] = None
            return f"data: {json.dumps(event)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            if chat:
                yield chunk(None, None, first=True)
            for i, word in enumerate(words):
                if token_delay:
                    await asyncio.sleep(token_delay)
                yield chunk(word if i == 0 or not word[0].isalnum() else f" {word}", None)
            yield chunk(None if chat else "", finish)
            if include_usage:
                last = {"id": ident, "object": kind, "created": created, "model": model.name, "choices": []}
                yield f"data: {json.dumps({**last, 'usage': usage(len(prompt), len(words))})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def chat_completions(request: Request) -> Response:
        return await complete(request, chat=True)

    async def completions(request: Request) -> Response:
        return await complete(request, chat=False)

    async def embeddings(request: Request) -> Response:
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            return error(400, "input must be a string or a list of strings", "invalid_request_error")
        data = [{"object": "embedding", "index": i, "embedding": model.embed(text)} for i, text in enumerate(texts)]
        prompt = sum(len(tokens_of(text)) for text in texts)
        return JSONResponse(
            {"object": "list", "data": data, "model": model.name, "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
        )

    def card() -> dict[str, Any]:
        return {"id": model.name, "object": "model", "created": created, "owned_by": "aicn-tests"}

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [card()]})

    async def one_model(request: Request) -> Response:
        if request.path_params["name"] != model.name:
            return error(404, f"The model `{request.path_params['name']}` does not exist.", "invalid_request_error", "model_not_found")
        return JSONResponse(card())

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    class NoCredentials:
        """Refuses any request that carries credentials: the gateway must never pass its clients' tokens on."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and any(name == b"authorization" for name, _ in scope["headers"]):
                await error(400, "this server takes no credentials", "invalid_request_error", "credentials_passed_on")(scope, receive, send)
                return
            await self.app(scope, receive, send)

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/models/{name:path}", one_model),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )
    uvicorn.run(NoCredentials(app), host="127.0.0.1", port=port, log_level="warning")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train")
    training.add_argument("out_dir", type=Path)
    training.add_argument("--name", default="bigram")
    serving = commands.add_parser("serve")
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--model-dir", type=Path, required=True)
    serving.add_argument("--mode", choices=["ok", "error", "hang"], default="ok")
    serving.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args.out_dir, args.name)
    else:
        serve(args.port, args.model_dir, args.mode, args.token_delay)


if __name__ == "__main__":
    main(sys.argv[1:])
