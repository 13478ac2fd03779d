"""A webhook's ingest as the edge reports it: timed, counted by outcome, and answered once committed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge import metrics
from bridge.errors import BridgeError
from bridge.ingest.deliveries import IngestResult


@contextlib.contextmanager
def measured(source: str) -> Iterator[None]:
    """Time one webhook's ingest and count a refusal by its status (what it did is counted by record_ingest)."""
    started = time.perf_counter()
    try:
        yield
    except BridgeError as exc:
        metrics.labelled(metrics.NOTIFICATIONS, source, metrics.WEBHOOK_OUTCOMES.get(exc.status, "error")).inc()
        raise
    finally:
        metrics.labelled(metrics.WEBHOOK_DURATION, source).observe(time.perf_counter() - started)


def measured_ingest(source: str, write: Callable[[], IngestResult]) -> IngestResult:
    """Run one webhook's ingest and count it: its duration, a refusal by its status, or what it did."""
    with measured(source):
        result = write()
    metrics.record_ingest(source, result)
    return result


def delivery_answer(result: IngestResult) -> dict[str, Any]:
    """What an alerts webhook answers once its notification is committed."""
    return {
        "status": "ok",
        "notification_id": result.notification_id,
        "incidents": result.incident_ids,
        "alerts": len(result.results),
        "outcomes": result.outcomes,
        "rejected": [{"index": item.index, "errors": list(item.errors)} for item in result.parsed.rejected],
        "truncated_alerts": result.parsed.truncated_alerts,
    }
