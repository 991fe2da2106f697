"""The AI stakeholder and AI reviewer over any OpenAI-compatible chat-completions endpoint.

OpenAI, Azure OpenAI (v1 endpoint), vLLM, llama.cpp and Ollama all speak chat completions
but differ on structured output, so feedback asks for a JSON schema first and falls back to
JSON mode, then to plain text read tolerantly, remembering what a server refused. Whatever
goes wrong comes back as an ``LlmError`` whose ``learner_message`` can be shown in chat as
is; a score is never made up to fill a gap.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Literal, cast

import openai
from openai import AsyncOpenAI

from adapters.base import LlmError, LlmErrorKind
from nudges.rehearsal import (
    NO_PITCH,
    ChatMessage,
    Feedback,
    FeedbackError,
    Rehearsal,
    Usage,
    parse_feedback,
    reveals_instructions,
)
from nudges.review import Source

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
MAX_REPLY_CHARS = 1500
MAX_SCAN_CHARS = 50_000  # tolerant JSON search is quadratic at worst; answers are far shorter
# What the stakeholder says instead of a reply that repeats its instructions.
STAY_ON_TOPIC = "Let's stay on topic. What exactly are you asking me for?"

JsonFormat = Literal["json_schema", "json_object", "text"]


# Words in a 400 that mean "this server does not do that response_format" (vLLM, llama.cpp,
# LM Studio, older Azure deployments) rather than a problem with the conversation itself.
_FORMAT_REFUSAL = re.compile(
    r"response_format|response format|json_schema|json_object|json schema|structured output|grammar|schema", re.IGNORECASE
)
_THINKING = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.IGNORECASE | re.DOTALL)


class OpenAiLlm:
    """The rehearsal port backed by an LLM: ``reply`` plays the stakeholder, ``feedback`` reviews.

    ``timeout`` bounds each HTTP attempt; ``max_retries`` is the openai client's own retry
    budget (connection errors, 408, 409, 429 and 5xx, with backoff and Retry-After).
    """

    source: Source = "ai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        # Explicit values, so the SDK never falls back to reading the environment itself;
        # local servers (Ollama, llama.cpp) ignore the key but the SDK insists on one.
        self._client = AsyncOpenAI(
            api_key=api_key or "no-key",
            base_url=base_url or OPENAI_BASE_URL,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._formats: list[JsonFormat] = ["json_schema", "json_object", "text"]

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAiLlm:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- the rehearsal port ---------------------------------------------------------------

    async def reply(self, rehearsal: Rehearsal) -> tuple[str, Usage]:
        """The stakeholder's next line; raises LlmError."""
        text, usage = await self.complete(rehearsal.stakeholder_messages())
        text = _THINKING.sub("", text).strip()[:MAX_REPLY_CHARS]
        if not text:
            raise LlmError("empty", "the stakeholder reply was empty")
        if reveals_instructions(text):
            log.warning("stakeholder reply repeated its instructions; replaced (scenario %s)", rehearsal.scenario.key)
            text = STAY_ON_TOPIC
        return text, usage

    async def feedback(self, rehearsal: Rehearsal) -> tuple[Feedback | None, Usage, LlmError | None]:
        """Checked rubric feedback, or None with the reason; never raises for LLM trouble."""
        if not rehearsal.leader_turns:
            return None, Usage(), LlmError("empty", "no leader turns to review", NO_PITCH)
        data, usage, error = await self.complete_json(rehearsal.feedback_messages(), rehearsal.feedback_schema())
        if error is not None:
            return None, usage, error
        try:
            return parse_feedback(data, rehearsal, source="ai"), usage, None
        except FeedbackError as exc:
            log.warning("AI feedback rejected: %s (scenario %s, model %s)", exc, rehearsal.scenario.key, self.model)
            return None, usage, LlmError("unparsed", str(exc))

    # --- chat completions -----------------------------------------------------------------

    async def complete(self, messages: Sequence[ChatMessage]) -> tuple[str, Usage]:
        """One plain chat completion; raises LlmError."""
        try:
            completion = await self._create(messages, None)
        except openai.OpenAIError as exc:
            raise _failed(exc, self.model) from None
        return _content(completion), _usage(completion)

    async def complete_json(
        self, messages: Sequence[ChatMessage], schema: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, Usage, LlmError | None]:
        """A JSON object from the model, trying json_schema, then json_object, then plain text."""
        for fmt in list(self._formats):
            try:
                completion = await self._create(messages, _response_format(fmt, schema))
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if fmt != "text" and _refuses_format(exc):
                    log.info("server refused response_format %s (%s); falling back", fmt, _brief(exc))
                    if fmt in self._formats:
                        self._formats.remove(fmt)
                    continue
                return None, Usage(), _failed(exc, self.model)
            except openai.OpenAIError as exc:
                return None, Usage(), _failed(exc, self.model)
            usage = _usage(completion)
            try:
                text = _content(completion)
            except LlmError as exc:
                return None, usage, LlmError("unparsed", exc.detail)
            data = extract_json_object(text)
            if data is None:
                cut = completion.choices[0].finish_reason == "length"
                detail = "the answer was cut off before its end" if cut else "the answer holds no JSON object"
                log.warning("AI feedback unreadable: %s (model %s, format %s)", detail, self.model, fmt)
                return None, usage, LlmError("unparsed", detail)
            return data, usage, None
        return None, Usage(), LlmError("rejected", "the server refused every response format")

    async def _create(self, messages: Sequence[ChatMessage], response_format: dict[str, Any] | None) -> Any:
        kwargs: dict[str, Any] = {"model": self.model, "messages": cast(Any, list(messages))}
        if response_format is not None:
            kwargs["response_format"] = response_format
        return await self._client.chat.completions.create(**kwargs)


def _response_format(fmt: JsonFormat, schema: dict[str, Any]) -> dict[str, Any] | None:
    if fmt == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "rehearsal_feedback", "schema": schema, "strict": True}}
    if fmt == "json_object":
        return {"type": "json_object"}
    return None


def _refuses_format(exc: openai.APIStatusError) -> bool:
    return bool(_FORMAT_REFUSAL.search(f"{exc.message} {exc.body!r}"))


def _content(completion: Any) -> str:
    if not completion.choices:
        raise LlmError("empty", "the answer had no choices")
    message = completion.choices[0].message
    if message.content:
        return str(message.content)
    if getattr(message, "refusal", None):
        raise LlmError("empty", f"the model refused: {str(message.refusal)[:200]}")
    raise LlmError("empty", "the answer had no content")


def _usage(completion: Any) -> Usage:
    usage = getattr(completion, "usage", None)
    if usage is None:
        return Usage()
    return Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))


def _brief(exc: openai.OpenAIError) -> str:
    status = getattr(exc, "status_code", None)
    text = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {text[:300]}"


def _failed(exc: openai.OpenAIError, model: str) -> LlmError:
    """The openai client's exception as an LlmError, logged with context (never the key)."""
    if isinstance(exc, openai.APITimeoutError):
        kind: LlmErrorKind = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        kind = "unreachable"
    elif isinstance(exc, openai.RateLimitError):
        kind = "rate_limited"
    elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
        kind = "misconfigured"
    elif isinstance(exc, openai.APIStatusError) and exc.status_code < 500:
        kind = "rejected"
    else:
        kind = "unavailable"
    detail = _brief(exc)
    log.warning("LLM call failed (%s, model %s): %s", kind, model, detail)
    return LlmError(kind, detail)


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer: bare, inside a code fence, or amid prose.

    Reasoning models' ``<think>`` blocks are skipped; they often hold half-written JSON.
    """
    text = _THINKING.sub("", text[:MAX_SCAN_CHARS]).strip()
    decoder = json.JSONDecoder()
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        start = candidate.find("{")
        while start >= 0:
            try:
                found, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                found = None
            if isinstance(found, dict):
                return found
            start = candidate.find("{", start + 1)
    return None
