"""The platform-neutral message model every adapter renders (Block Kit, Adaptive Cards, text).

Use cases build these; adapters turn them into platform payloads. Text here is plain user
or program text: adapters escape it for their platform, so nothing in this module does.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Choice:
    """A button. ``value`` comes back verbatim with the click."""

    label: str
    value: str
    selected: bool = False


@dataclass(frozen=True)
class Header:
    text: str


@dataclass(frozen=True)
class Section:
    """A paragraph, optionally with a row of choice buttons under it (``block_id`` names the row)."""

    text: str
    choices: tuple[Choice, ...] = ()
    block_id: str | None = None


@dataclass(frozen=True)
class Image:
    """A picture: ``url`` for a hosted image, or ``data`` (PNG bytes) to upload with the message."""

    alt: str
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Context:
    """A small grey line: streaks, labels such as "AI feedback — not reviewed"."""

    text: str


Block = Header | Section | Image | Context


@dataclass(frozen=True)
class Message:
    """A whole message. ``text`` is the notification / fallback text shown where blocks are not."""

    text: str
    blocks: tuple[Block, ...] = ()

    def plain(self) -> str:
        """The message as plain text, for the console and for logs."""
        lines: list[str] = []
        for block in self.blocks:
            if isinstance(block, Header):
                lines.append(f"== {block.text} ==")
            elif isinstance(block, Section):
                lines.append(block.text)
                if block.choices:
                    lines.append("   " + "  ".join(f"[{'x' if c.selected else ' '}] {c.label}" for c in block.choices))
            elif isinstance(block, Image):
                lines.append(f"(image: {block.alt})")
            elif isinstance(block, Context):
                lines.append(f"   {block.text}")
        return "\n".join(lines) if lines else self.text
