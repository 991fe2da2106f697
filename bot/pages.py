"""The privacy statement and terms of use `reinforce serve` shows at /privacy and /terms, which the Teams app links to.

Plain HTML, written for the people in a program: what Reinforce keeps, who sees it, for how
long, and how to leave. An organisation with pages of its own sets REINFORCE_PRIVACY_URL and
REINFORCE_TERMS_URL instead, and the Teams package links to those.
"""

from __future__ import annotations

from html import escape

__all__ = ["privacy_page", "terms_page"]

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reinforce: {title}</title></head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def privacy_page(retention_days: int, min_group_size: int = 5) -> str:
    """What is stored, who sees it and for how long; ``retention_days`` is REINFORCE_RETENTION_DAYS."""
    body = f"""<p>Reinforce is run by your organisation for its leadership programme. It keeps, in the
organisation's own database:</p>
<ul>
<li>who is in the programme: your email, name, time zone, role and cohort, as the programme
file lists them, and the Slack or Teams account linked to your email;</li>
<li>whether you accepted the consent message. Nothing else about you is recorded until you
do;</li>
<li>your answers to the weekly checklist (behaviour, week, answer, time), your snoozes and
skips, and the notes you add;</li>
<li>your pitch rehearsals and the AI feedback on them, and a coach's review of that
feedback;</li>
<li>which messages were sent to you, and an audit log of refusals, deletions and other
actions taken.</li>
</ul>
<h2>Who sees what</h2>
<ul>
<li>Sponsors see cohort figures only, never a figure drawn from fewer than {min_group_size}
people, and never your notes or your rehearsals.</li>
<li>A coach sees AI feedback that was flagged for review, so they can approve, edit or reject
it. AI feedback is advice for you alone; it is never used to evaluate you.</li>
<li>Exports for analysis use keyed pseudonyms: no names, emails, chat ids or notes.</li>
<li>When the organisation has configured a language model, your rehearsal turns are sent to
it to produce the other side of the conversation and the feedback.</li>
</ul>
<h2>How long</h2>
<ul>
<li>Notes, rehearsal transcripts and feedback texts are deleted {retention_days} days after they
were written.</li>
<li>Answers and the cohort figures made from them are kept for the programme's measurement,
until you ask for them to be deleted.</li>
</ul>
<h2>Your choices</h2>
<ul>
<li>Type <code>pause</code> or <code>optout</code> to the bot at any time.</li>
<li>Ask the programme's owners to delete everything held about you: they remove your answers,
notes, rehearsals, consent and chat ids at once. Figures already reported for your cohort
stay as they were.</li>
</ul>
"""
    return _PAGE.format(title="Privacy", body=body)


def terms_page(privacy_url: str = "/privacy") -> str:
    """The terms under which people use the bot; they link to the privacy statement at ``privacy_url``."""
    body = f"""<ul>
<li>Reinforce is provided by your organisation for its leadership programme. Taking part is
your choice: you accept the consent message first, and can pause or opt out at any time.</li>
<li>AI feedback on a rehearsal is labelled as AI. It is advice, it can be wrong, and some of it
is checked by a coach before you see it. It is never used to evaluate you.</li>
<li>Keep notes and rehearsals to what you would say at work: leave out other people's health,
pay or other sensitive details.</li>
<li>Sponsors see cohort figures only; see the <a href="{escape(privacy_url)}">privacy statement</a> for what
is kept and for how long.</li>
<li>Questions go to the programme's owners in your organisation.</li>
</ul>
"""
    return _PAGE.format(title="Terms of use", body=body)
