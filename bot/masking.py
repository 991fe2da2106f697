"""Masking the secrets an error or log line could carry: passwords in URLs and DSNs, and tokens."""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "MaskingFilter", "mask", "mask_logging"]

MASK = "***"

# Each pattern keeps what helps an operator (the scheme, user and host of a URL, the kind of a
# token) and masks the rest. Python has no masking of its own for free text, so these are
# written here; the shapes are those of the secrets Reinforce's settings hold.
_PATTERNS = (
    # The password in a URL or DSN's user info: scheme://user:PASSWORD@host. It runs to the
    # last "@" before the host, so an unencoded "@" in a password is masked too.
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@'\"]*:)[^\s/'\"]*(?=@[^\s@/'\"]*(?:[/?#\s'\"]|$))"), rf"\g<1>{MASK}"),
    # Secret query parameters (?password=…, &token=…, an OAuth ?code=…) and libpq keyword
    # DSNs (password=…).
    (
        re.compile(
            r"(?i)((?:[?&;]|\b)(?:password|passwd|pwd|token|access_token|refresh_token|api_?key|secret|client_secret|"
            r"signing_secret|sig|signature)=|[?&]code=)[^&\s'\",;)]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # Token shapes: Slack (xoxb-, xoxp-, xoxe.xoxb-, xapp-), OpenAI-style keys (sk-…),
    # HTTP authorization values, and JSON Web Tokens (Bot Framework).
    (re.compile(r"\b((?:xox[a-z](?:\.xox[a-z])?|xapp)-)[A-Za-z0-9.-]+"), rf"\g<1>{MASK}"),
    (re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1>{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), f"eyJ{MASK}"),
)


def mask(text: str) -> str:
    """``text`` with every URL password, secret parameter and token-shaped value masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskingFilter(logging.Filter):
    """Masks each record's message and traceback before a handler writes it: libraries log
    URLs and exception texts of their own, which no call site of ours can mask."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def mask_logging(logger: logging.Logger | None = None) -> None:
    """Install MaskingFilter on every handler of ``logger`` (the root logger by default), so
    whatever any library logs through them is masked."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
