"""A loopback OpenAI chat-completions server, so tests drive the real openai client.

It speaks the real wire format (``POST /v1/chat/completions`` -> ``chat.completion``
objects with ``usage``), records every request, and plays back a per-test script:
answers, error statuses, a hang past the client's timeout, unparseable text. It can also
refuse ``response_format`` types the way vLLM, llama.cpp and LM Studio do, and enforces
OpenAI's rule that JSON mode needs the word "json" in the messages.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Responder = Callable[[dict[str, Any]], str]


@dataclass
class Step:
    """One scripted outcome: an answer (``content``), an error (``status``), or a hang."""

    content: str | None = None
    status: int = 200
    error: str | None = None
    hang: bool = False
    finish_reason: str = "stop"
    usage: tuple[int, int] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def response_format(self) -> str | None:
        fmt = self.body.get("response_format")
        return fmt.get("type") if isinstance(fmt, dict) else None


class FakeOpenAI:
    """The server and its script; ``base_url`` is what the client is given."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Step] = deque()
        self.responder: Responder | None = None  # answers when the script is empty
        self.refuse: set[str] = set()  # response_format types answered with a 400
        self._release = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- scripting ------------------------------------------------------------------------

    def answer(self, content: str, *, usage: tuple[int, int] | None = None, finish_reason: str = "stop") -> None:
        self.script.append(Step(content=content, usage=usage, finish_reason=finish_reason))

    def answer_json(self, data: Any, **kwargs: Any) -> None:
        self.answer(json.dumps(data), **kwargs)

    def fail(self, status: int, message: str = "server error", *, times: int = 1, retry_after_ms: int | None = 10) -> None:
        """Answer ``times`` requests with an error; ``retry_after_ms`` keeps client retries fast."""
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        for _ in range(times):
            self.script.append(Step(status=status, error=message, headers=headers))

    def hang(self, times: int = 1) -> None:
        """Never answer (until the server closes), so the client's timeout fires."""
        for _ in range(times):
            self.script.append(Step(hang=True))

    def release(self) -> None:
        """Let the requests hanging now (and any later ``hang``) fail with a 504."""
        self._release.set()

    def refuse_json_schema(self) -> None:
        """Like vLLM/llama.cpp builds without structured outputs: 400 on json_schema."""
        self.refuse.add("json_schema")

    def refuse_json_object(self) -> None:
        """Like LM Studio: 400 on json_object."""
        self.refuse.add("json_object")

    # --- serving --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # a free port chosen by the OS, known before serving
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"

    async def close(self) -> None:
        self._release.set()  # let hanging handlers finish, so shutdown does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(body, dict(request.headers)))
        fmt = body.get("response_format", {}).get("type") if isinstance(body.get("response_format"), dict) else None
        if fmt in self.refuse:
            # vLLM / llama.cpp wording; the client must treat it as "not supported here".
            if fmt == "json_schema":
                return _error(400, f'response_format type must be one of "text" or "json_object", but got: {fmt}')
            return _error(400, f"'response_format.type' must be 'json_schema' or 'text', got {fmt}")
        if fmt == "json_object" and "json" not in json.dumps(body.get("messages", [])).lower():
            return _error(400, "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.")
        if self.script:
            step = self.script.popleft()
        elif self.responder is not None:
            step = Step(content=self.responder(body))
        else:
            # Not retryable, so a test that forgot to script a response fails at once.
            return _error(500, "fake server: no response scripted for this request", {"x-should-retry": "false"})
        if step.hang:
            await self._release.wait()
            return _error(504, "fake server closed while hanging")
        if step.status != 200:
            return _error(step.status, step.error or "error", step.headers)
        content = step.content or ""
        prompt, completion = step.usage or (_tokens(json.dumps(body.get("messages", []))), _tokens(content))
        return web.json_response(
            {
                "id": f"chatcmpl-fake{next(self._ids)}",
                "object": "chat.completion",
                "created": 1_767_225_600,
                "model": body.get("model", "fake-model"),
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": step.finish_reason,
                    }
                ],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            },
            headers=step.headers,
        )


def _tokens(text: str) -> int:
    """A stand-in token count: roughly four characters a token, never zero."""
    return max(1, len(text) // 4)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status, headers=headers)


@asynccontextmanager
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """``async with fake_openai() as server:`` -- a started server, closed afterwards."""
    server = FakeOpenAI()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
