"""Group commit: concurrent requests of one process share a write transaction.

Under an alert storm most of a webhook's cost is per transaction (begin, lookups,
statement execution, commit, round trips to PostgreSQL), not per alert. Requests that
arrive while a transaction is being written queue up; when it ends, the oldest waiting
request leads the next transaction for everything queued (up to `max_batch`). With no
concurrency a request writes at once, alone, as before. Every request still returns only
after the transaction holding its item has committed.

Requests served on an event loop (`submit_async`) queue apart: one writer thread makes
their items (a webhook's parsing and routing), writes them in groups and settles a whole
group's futures with one call into the loop, so no request wakes a thread of its own.
Making the items there keeps the loop's thread light: on SQLite the writer holds the
database's write lock while it runs, and every moment it waits for the GIL behind the
loop's parsing the other processes wait too (measured: 15-20% more alerts/s under a storm
than parsing on the loop; bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from bridge.errors import StoreUnavailable

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    """One request's item and outcome. `ready` is a lock held from the start and released once,
    when the request may go on (its group committed, or the lead passed to it): two C calls,
    where an Event's Condition runs Python code on both sides of every hand-over."""

    __slots__ = ("item", "result", "error", "ready", "lead")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.ready = threading.Lock()
        self.ready.acquire()
        self.lead = False

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit(Generic[T, R]):
    """Write items in groups through `write`, which returns one result per item, in order.

    When a group fails for another reason than the database being unavailable, each of its
    items is written again alone, so one bad item cannot fail its neighbours.
    """

    def __init__(self, write: Callable[[Sequence[T]], list[R]], max_batch: int) -> None:
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[_Slot[T, R]] = deque()
        self._leading = False
        self._loop_queue: deque[tuple[Callable[[], T], asyncio.Future[R]]] = deque()
        self._draining = False
        self._writer: ThreadPoolExecutor | None = None

    def submit(self, item: T) -> R:
        """Write `item` (possibly with others) and return its result once committed."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.ready.acquire()
            if not slot.lead:
                return slot.outcome()
        self._lead(slot)
        return slot.outcome()

    def _lead(self, own: _Slot[T, R]) -> None:
        """Write the oldest queued items (the leader's own is first), then pass the lead on."""
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        try:
            self._write_group(group)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.ready.release()
                else:
                    self._leading = False
            for slot in group:
                if slot is not own:  # the leader is not waiting: its lock was never (or already) handed over
                    slot.ready.release()

    def _write_group(self, group: list[_Slot[T, R]]) -> None:
        for slot, (result, error) in zip(group, self._outcomes([slot.item for slot in group]), strict=True):
            slot.result, slot.error = result, error

    def _outcomes(self, items: list[T]) -> list[tuple[R | None, BaseException | None]]:
        """Each item's result or error; a group that fails as data is written again item by item."""
        try:
            return [(result, None) for result in self._write(items)]
        except BaseException as exc:
            if len(items) > 1 and isinstance(exc, Exception) and not isinstance(exc, StoreUnavailable):
                return [outcome for item in items for outcome in self._outcomes([item])]
            return [(None, exc)] * len(items)

    async def submit_async(self, make: Callable[[], T]) -> R:
        """From an event loop: make an item and write it (possibly with others) on the writer thread; its result
        once committed. An exception of `make` fails this request alone."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._loop_queue.append((make, future))
            start = not self._draining
            self._draining = True
        if start:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
            self._writer.submit(self._drain)
        return await future

    def _drain(self) -> None:
        """On the writer thread: make and write the loop's queued items in groups until none is left."""
        while True:
            with self._lock:
                group = [self._loop_queue.popleft() for _ in range(min(self._max_batch, len(self._loop_queue)))]
                if not group:
                    self._draining = False
                    return
            try:
                outcomes = self._made_and_written([make for make, _ in group])
            except BaseException as exc:  # never leave a request waiting, whatever happened
                outcomes = [(None, exc)] * len(group)
            _settle_on_their_loops([future for _, future in group], outcomes)

    def _made_and_written(self, makers: list[Callable[[], T]]) -> list[tuple[R | None, BaseException | None]]:
        """Each maker's outcome: the error it raised, or the result of writing what it made with the others'."""
        made: list[T] = []
        failed: dict[int, BaseException] = {}
        for position, make in enumerate(makers):
            try:
                made.append(make())
            except Exception as exc:
                failed[position] = exc
        written = iter(self._outcomes(made) if made else [])
        return [(None, failed[position]) if position in failed else next(written) for position in range(len(makers))]


def _settle_on_their_loops(
    futures: list[asyncio.Future[R]], outcomes: list[tuple[R | None, BaseException | None]]
) -> None:
    """Hand the outcomes over with one call into each loop the requests wait on (a serving process has one)."""
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list[asyncio.Future[R]], list[Any]]] = {}
    for future, outcome in zip(futures, outcomes, strict=True):
        waiting, theirs = by_loop.setdefault(future.get_loop(), ([], []))
        waiting.append(future)
        theirs.append(outcome)
    for loop, (waiting, theirs) in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiting, theirs)
        except RuntimeError:  # that loop is closed: nobody is waiting there any more
            continue


def _settle(futures: list[asyncio.Future[R]], outcomes: list[tuple[R | None, BaseException | None]]) -> None:
    """On the loop: hand each request its outcome (a request whose client left is already cancelled)."""
    for future, (result, error) in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
