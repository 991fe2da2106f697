"""Prometheus metrics the processes expose at /metrics."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge

DELIVERIES = Counter("reinforce_deliveries", "Outbox deliveries by kind and outcome", ["kind", "status"])
RETRIES = Counter("reinforce_delivery_retries", "Deliveries put back for another attempt", ["platform", "reason"])
RATE_LIMITED = Counter("reinforce_rate_limited", "Platform answers of 429 Too Many Requests", ["platform"])
OUTBOX_LAG = Gauge("reinforce_outbox_lag_seconds", "Age of the oldest due, unsent delivery")
CLICKS = Counter("reinforce_clicks", "Checklist clicks by outcome", ["status"])
ERRORS = Counter("reinforce_errors", "Errors logged by the application", ["where"])


@functools.cache
def deliveries(kind: str, status: str) -> Counter:
    """DELIVERIES' counter for one kind and outcome, looked up once: ``labels()`` takes a lock
    and checks its arguments on every call, and a fan-out counts thousands a second."""
    return DELIVERIES.labels(kind, status)
