"""Group commit: requests queued behind a transaction share the next one, each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from bridge.errors import DataRefused, StoreUnavailable
from bridge.ingest.group_commit import GroupCommit, _settle_on_their_loops


class Recorder:
    """A write function that records its groups and can hold the first one until others queue."""

    def __init__(self, hold_first_until: int = 0, fail_on: set[int] | None = None, unavailable: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.threads: list[str] = []
        self.hold_first_until = hold_first_until
        self.fail_on = fail_on or set()
        self.unavailable = unavailable
        self.queued = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[str]:
        self.groups.append(list(items))
        self.threads.append(threading.current_thread().name)
        if len(self.groups) == 1 and self.hold_first_until:
            self.release.wait(5)
        if self.unavailable:
            raise StoreUnavailable("database unavailable; retry later")
        if self.fail_on & set(items):
            raise ValueError(f"bad item in {sorted(self.fail_on & set(items))}")
        return [f"done {item}" for item in items]


def submit_all(commit: GroupCommit[int, str], items: list[int], recorder: Recorder) -> dict[int, object]:
    """Submit item 0 first; once it is being written, submit the rest and let the write go on."""
    answers: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            answers[item] = commit.submit(item)
        except Exception as exc:
            answers[item] = exc

    first = threading.Thread(target=submit, args=(items[0],))
    first.start()
    while not recorder.groups:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=submit, args=(item,)) for item in items[1:]]
    for thread in others:
        thread.start()
    while len(commit._queue) < len(items) - 1:
        threading.Event().wait(0.001)
    recorder.release.set()
    for thread in [first, *others]:
        thread.join(5)
    return answers


def test_requests_queued_behind_a_transaction_share_the_next_one() -> None:
    recorder = Recorder(hold_first_until=1)
    commit = GroupCommit(recorder, max_batch=64)
    answers = submit_all(commit, list(range(9)), recorder)

    assert recorder.groups[0] == [0]
    assert sorted(recorder.groups[1]) == list(range(1, 9))
    assert answers == {item: f"done {item}" for item in range(9)}


def test_groups_are_capped_at_max_batch() -> None:
    recorder = Recorder(hold_first_until=1)
    commit = GroupCommit(recorder, max_batch=3)
    answers = submit_all(commit, list(range(8)), recorder)

    assert [len(group) for group in recorder.groups] == [1, 3, 3, 1]
    assert sorted(item for group in recorder.groups for item in group) == list(range(8))
    assert answers == {item: f"done {item}" for item in range(8)}


def test_a_bad_item_fails_alone_and_its_neighbours_are_written_again_alone() -> None:
    recorder = Recorder(hold_first_until=1, fail_on={4})
    commit = GroupCommit(recorder, max_batch=64)
    answers = submit_all(commit, list(range(7)), recorder)

    assert isinstance(answers[4], ValueError)
    assert {item: answer for item, answer in answers.items() if item != 4} == {
        item: f"done {item}" for item in range(7) if item != 4
    }
    assert len(recorder.groups[1]) == 6
    assert all(len(group) == 1 for group in recorder.groups[2:])


def test_database_unavailable_fails_the_whole_group_without_retrying_each() -> None:
    recorder = Recorder(hold_first_until=1, unavailable=True)
    commit = GroupCommit(recorder, max_batch=64)
    answers = submit_all(commit, list(range(5)), recorder)

    assert all(isinstance(answer, StoreUnavailable) for answer in answers.values())
    assert [len(group) for group in recorder.groups] == [1, 4]


def test_alone_a_request_writes_at_once_and_a_failure_releases_the_lead() -> None:
    recorder = Recorder(fail_on={2})
    commit = GroupCommit(recorder, max_batch=64)

    assert commit.submit(1) == "done 1"
    with pytest.raises(ValueError):
        commit.submit(2)
    assert commit.submit(3) == "done 3"
    assert recorder.groups == [[1], [2], [3]]


def test_a_value_the_database_refuses_fails_only_its_own_item():
    """DataRefused (400) is bad input, not an outage: the group is rewritten one item at a time."""

    def write(items: Sequence[int]) -> list[str]:
        if 2 in items:
            raise DataRefused("a value was refused by the database", ["database: integer out of range"])
        return [f"done {item}" for item in items]

    recorder = Recorder(hold_first_until=3)
    recorder_write = recorder.__call__

    def held(items: Sequence[int]) -> list[str]:
        recorder_write(items)
        return write(items)

    commit: GroupCommit[int, str] = GroupCommit(held, max_batch=8)
    answers = submit_all(commit, [0, 1, 2, 3], recorder)
    assert answers[0] == "done 0"
    assert recorder.groups == [[0], [1, 2, 3], [1], [2], [3]]
    assert answers[1] == "done 1" and answers[3] == "done 3"
    assert isinstance(answers[2], DataRefused) and answers[2].status == 400


async def submit_all_from_loop(
    commit: GroupCommit[int, str], items: list[int], recorder: Recorder
) -> dict[int, object]:
    """As `submit_all`, from one event loop: item 0 first; the rest queue while it is being written."""
    loop = asyncio.get_running_loop()

    async def submit(item: int) -> object:
        try:
            return await commit.submit_async(lambda: item)
        except Exception as exc:
            return exc

    first = asyncio.ensure_future(submit(items[0]))
    while not recorder.groups:
        await asyncio.sleep(0.001)
    others = [asyncio.ensure_future(submit(item)) for item in items[1:]]
    while len(commit._loop_queue) < len(items) - 1:
        await asyncio.sleep(0.001)
    await loop.run_in_executor(None, recorder.release.set)
    answers = await asyncio.wait_for(asyncio.gather(first, *others), 5)
    return dict(zip(items, answers, strict=True))


def test_requests_from_the_loop_queued_behind_a_transaction_share_the_next_one() -> None:
    recorder = Recorder(hold_first_until=1)
    commit = GroupCommit(recorder, max_batch=64)
    answers = asyncio.run(submit_all_from_loop(commit, list(range(9)), recorder))

    assert recorder.groups == [[0], list(range(1, 9))]  # the loop's queue keeps arrival order
    assert answers == {item: f"done {item}" for item in range(9)}
    assert all(name.startswith("group-commit") for name in recorder.threads)  # written off the loop


def test_from_the_loop_groups_are_capped_and_a_bad_item_fails_alone() -> None:
    recorder = Recorder(hold_first_until=1, fail_on={4})
    commit = GroupCommit(recorder, max_batch=3)
    answers = asyncio.run(submit_all_from_loop(commit, list(range(8)), recorder))

    assert recorder.groups[:4] == [[0], [1, 2, 3], [4, 5, 6], [4]]
    assert isinstance(answers[4], ValueError)
    assert {item: answer for item, answer in answers.items() if item != 4} == {
        item: f"done {item}" for item in range(8) if item != 4
    }


def test_from_the_loop_an_unavailable_database_fails_the_group_and_the_next_request_writes_again() -> None:
    recorder = Recorder(hold_first_until=1, unavailable=True)
    commit = GroupCommit(recorder, max_batch=64)
    answers = asyncio.run(submit_all_from_loop(commit, list(range(5)), recorder))
    assert all(isinstance(answer, StoreUnavailable) for answer in answers.values())
    assert [len(group) for group in recorder.groups] == [1, 4]

    recorder.unavailable = False
    assert asyncio.run(commit.submit_async(lambda: 7)) == "done 7"  # the writer took up again, from another loop


def test_a_request_whose_client_left_does_not_stop_its_group() -> None:
    """A cancelled request (the client went away) is still written, and its neighbours still answered."""
    recorder = Recorder(hold_first_until=1)
    commit = GroupCommit(recorder, max_batch=64)

    async def scenario() -> tuple[object, object]:
        first = asyncio.ensure_future(commit.submit_async(lambda: 0))
        while not recorder.groups:
            await asyncio.sleep(0.001)
        gone = asyncio.ensure_future(commit.submit_async(lambda: 1))
        kept = asyncio.ensure_future(commit.submit_async(lambda: 2))
        while len(commit._loop_queue) < 2:
            await asyncio.sleep(0.001)
        gone.cancel()
        recorder.release.set()
        return await asyncio.wait_for(first, 5), await asyncio.wait_for(kept, 5)

    assert asyncio.run(scenario()) == ("done 0", "done 2")
    assert recorder.groups == [[0], [1, 2]]


def test_from_the_loop_items_are_made_on_the_writer_thread_and_a_maker_that_fails_fails_alone() -> None:
    recorder = Recorder(hold_first_until=1)
    commit = GroupCommit(recorder, max_batch=64)
    made_on: list[str] = []

    def make(item: int) -> int:
        made_on.append(threading.current_thread().name)
        if item == 3:
            raise ValueError("unparseable body")
        return item

    async def scenario() -> list[object]:
        async def submit(item: int) -> object:
            try:
                return await commit.submit_async(lambda: make(item))
            except ValueError as exc:
                return exc

        first = asyncio.ensure_future(submit(0))
        while not recorder.groups:
            await asyncio.sleep(0.001)
        others = [asyncio.ensure_future(submit(item)) for item in (1, 2, 3, 4)]
        while len(commit._loop_queue) < 4:
            await asyncio.sleep(0.001)
        recorder.release.set()
        return list(await asyncio.wait_for(asyncio.gather(first, *others), 5))

    answers = asyncio.run(scenario())
    assert answers[:3] == ["done 0", "done 1", "done 2"] and answers[4] == "done 4"
    assert isinstance(answers[3], ValueError)
    assert recorder.groups == [[0], [1, 2, 4]]  # the others still share one transaction
    assert all(name.startswith("group-commit") for name in made_on)


def test_outcomes_for_a_closed_loop_are_dropped_and_the_others_still_settled() -> None:
    """A loop that went away (a test's, or a worker's at exit) must not stop the writer settling the rest."""
    closed = asyncio.new_event_loop()
    gone = closed.create_future()
    closed.close()

    async def scenario() -> object:
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[str] = loop.create_future()
        await loop.run_in_executor(None, _settle_on_their_loops, [gone, waiting], [("a", None), ("b", None)])
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(scenario()) == "b"
    assert not gone.done()
