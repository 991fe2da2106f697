"""The consent message every member sees first: what is recorded and who sees what."""

from __future__ import annotations

from nudges.messages import Choice, Header, Message, Section
from nudges.program import Program

ACCEPT = "consent|accept"
DECLINE = "consent|decline"


def consent_message(program: Program) -> Message:
    """Two lines and two buttons; nothing about the member is recorded until they accept."""
    recorded = "What is recorded: your answers to three questions a week about habits from your program, and any note you add."
    seen = (
        f"Who sees what: you see your own answers; sponsors see only cohort figures from at least "
        f"{program.min_group_size} people, never your answers or notes. You can opt out at any time."
    )
    return Message(
        text=f"{program.program}: may I send you a weekly three-question check-in?",
        blocks=(
            Header(f"{program.program}: weekly check-in"),
            Section(recorded),
            Section(seen, (Choice("Accept", ACCEPT), Choice("Not now", DECLINE)), block_id="consent"),
        ),
    )
