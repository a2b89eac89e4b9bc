"""The ``CommandJournal`` and ``SnapshotStore`` contract: every backend in
``journal_backends.JOURNAL_BACKENDS`` must pass all of it."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from journal_backends import JOURNAL_BACKENDS, JournalBackend, make_journal_backend

from memetrade.ports import CommandJournal, SnapshotStore, StorageError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=JOURNAL_BACKENDS)
def journal_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalBackend]:
    backend = make_journal_backend(request.param, tmp_path)
    yield backend
    backend.drop()


@pytest.fixture
async def journal(journal_backend: JournalBackend) -> AsyncIterator[CommandJournal]:
    opened = journal_backend.journal()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def snapshots(journal_backend: JournalBackend) -> AsyncIterator[SnapshotStore]:
    opened = journal_backend.snapshots(3)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def entry(seq: int) -> bytes:
    """A payload that says which entry it is, of a length that varies with it."""
    return b"entry %d;" % seq * (seq % 7 + 1)


async def read_all(journal: CommandJournal, from_seq: int = 1, chunk: int = 1000) -> list[int]:
    """Seqs of every entry from ``from_seq`` on, read in chunks, checking each payload."""
    seqs: list[int] = []
    while batch := await journal.read(from_seq, chunk):
        assert all(payload == entry(seq) for seq, payload in batch)
        seqs += [seq for seq, _ in batch]
        from_seq = batch[-1][0] + 1
    return seqs


async def append_range(journal: CommandJournal, first: int, last: int) -> int:
    return await journal.append([entry(seq) for seq in range(first, last + 1)])


# -- journal --------------------------------------------------------------------------------------


async def test_an_empty_journal_has_nothing_to_read(journal: CommandJournal) -> None:
    assert journal.last_seq() == 0
    assert await journal.read(1, 10) == []
    assert await journal.append([]) == 0


async def test_appends_are_numbered_consecutively_from_one(journal: CommandJournal) -> None:
    assert await journal.append([b"a", b"b", b"c"]) == 3
    assert await journal.append([b"d"]) == 4
    assert await journal.append([]) == 4
    assert journal.last_seq() == 4
    assert await journal.read(1, 10) == [(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")]


async def test_read_starts_at_any_seq_and_stops_at_the_limit(journal: CommandJournal) -> None:
    await append_range(journal, 1, 50)
    assert await journal.read(10, 3) == [(10, entry(10)), (11, entry(11)), (12, entry(12))]
    assert [seq for seq, _ in await journal.read(48, 10)] == [48, 49, 50]
    assert await journal.read(51, 10) == []
    assert await journal.read(5, 0) == []
    with pytest.raises(ValueError, match="numbered from 1"):
        await journal.read(0, 10)


async def test_entries_survive_a_reopen_and_numbering_continues(
    journal_backend: JournalBackend,
) -> None:
    first = journal_backend.journal()
    await first.open()
    await append_range(first, 1, 120)
    await first.close()

    second = journal_backend.journal()
    await second.open()
    try:
        assert second.last_seq() == 120
        assert await append_range(second, 121, 130) == 130
        assert await read_all(second) == list(range(1, 131))
    finally:
        await second.close()


async def test_reading_in_chunks_returns_every_entry_once(journal: CommandJournal) -> None:
    # Thousands of entries in batches of every size, over many segments of the file backend.
    last, size = 0, 1
    while last < 5_000:
        last = await append_range(journal, last + 1, last + size)
        size = size * 3 % 997
    assert await read_all(journal, chunk=333) == list(range(1, last + 1))
    assert await read_all(journal, from_seq=4_321, chunk=1) == list(range(4_321, last + 1))


async def test_empty_and_large_entries_round_trip(journal: CommandJournal) -> None:
    big = os.urandom(3 * 1024 * 1024)
    await journal.append([b"", big, b"\x00" * 17])
    assert await journal.read(1, 3) == [(1, b""), (2, big), (3, b"\x00" * 17)]


async def test_concurrent_appends_get_distinct_consecutive_numbers(
    journal: CommandJournal,
) -> None:
    returned: dict[int, int] = {}

    async def append(task: int) -> None:
        returned[task] = await journal.append([b"%d/%d" % (task, i) for i in range(task + 1)])

    async with anyio.create_task_group() as tasks:
        for task in range(20):
            tasks.start_soon(append, task)

    total = sum(range(1, 21))
    assert journal.last_seq() == total
    stored = dict(await journal.read(1, total + 1))
    assert sorted(stored) == list(range(1, total + 1))
    for task, last in returned.items():
        # Each call's entries are together, in order, ending at the seq it returned.
        assert [stored[seq] for seq in range(last - task, last + 1)] == [
            b"%d/%d" % (task, i) for i in range(task + 1)
        ]


async def test_a_second_journal_on_the_same_storage_cannot_interleave(
    journal_backend: JournalBackend, journal: CommandJournal
) -> None:
    await journal.append([b"a"])
    other = journal_backend.journal()
    try:
        await other.open()
    except StorageError:
        return  # Refused at open (the file journal's lock): one writer at a time.
    try:
        await journal.append([b"b"])
        # Its numbering is stale: the append must fail rather than reuse or skip a seq.
        with pytest.raises(StorageError):
            await other.append([b"c"])
    finally:
        await other.close()
    assert await journal.read(1, 10) == [(1, b"a"), (2, b"b")]


async def test_truncate_before_keeps_later_entries_and_the_numbering(
    journal_backend: JournalBackend, journal: CommandJournal
) -> None:
    last = 0
    for _ in range(50):
        last = await append_range(journal, last + 1, last + 10)
    await journal.truncate_before(300)

    assert await read_all(journal, from_seq=300) == list(range(300, 501))
    with pytest.raises(StorageError, match="truncate_before"):
        await journal.read(1, 10)
    assert await append_range(journal, 501, 510) == 510
    # Even asked to drop everything, the journal keeps counting, across a reopen too.
    await journal.truncate_before(10_000)
    assert await read_all(journal, from_seq=510) == [510]
    await journal.close()
    reopened = journal_backend.journal()
    await reopened.open()
    try:
        assert reopened.last_seq() == 510
        assert await append_range(reopened, 511, 511) == 511
    finally:
        await reopened.close()


# -- snapshots ------------------------------------------------------------------------------------


async def test_no_snapshot_loads_as_none(snapshots: SnapshotStore) -> None:
    assert await snapshots.load_latest_valid() is None
    assert await snapshots.seqs() == []


async def test_the_newest_snapshot_loads_and_only_the_newest_are_kept(
    snapshots: SnapshotStore,
) -> None:
    for seq in (0, 10, 20, 30, 40):
        await snapshots.save(seq, b"state after %d" % seq)
    assert await snapshots.load_latest_valid() == (40, b"state after 40")
    assert await snapshots.seqs() == [20, 30, 40]


async def test_a_snapshot_saved_again_at_a_seq_replaces_it(snapshots: SnapshotStore) -> None:
    await snapshots.save(7, b"first")
    await snapshots.save(7, b"second")
    assert await snapshots.load_latest_valid() == (7, b"second")
    assert await snapshots.seqs() == [7]


async def test_snapshots_survive_a_reopen(journal_backend: JournalBackend) -> None:
    payload = os.urandom(2 * 1024 * 1024)
    first = journal_backend.snapshots(3)
    await first.open()
    await first.save(12, payload)
    await first.close()
    second = journal_backend.snapshots(3)
    await second.open()
    try:
        assert await second.load_latest_valid() == (12, payload)
    finally:
        await second.close()


async def test_a_damaged_newest_snapshot_falls_back_to_an_older_one(
    journal_backend: JournalBackend, snapshots: SnapshotStore, caplog: pytest.LogCaptureFixture
) -> None:
    for seq in (100, 200, 300):
        await snapshots.save(seq, b"state after %d" % seq)
    journal_backend.damage_snapshot(300)
    journal_backend.damage_snapshot(200)
    with caplog.at_level(logging.WARNING):
        assert await snapshots.load_latest_valid() == (100, b"state after 100")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "300" in warnings[0]
    assert "200" in warnings[1]

    journal_backend.damage_snapshot(100)
    assert await snapshots.load_latest_valid() is None


# -- kill -9 --------------------------------------------------------------------------------------

_CHILD = """
import asyncio

{setup}

def entry(seq: int) -> bytes:
    return b"entry %d;" % seq * (seq % 7 + 1)

async def main() -> None:
    journal = make_journal()
    await journal.open()
    while True:
        first = journal.last_seq() + 1
        last = await journal.append([entry(seq) for seq in range(first, first + 100)])
        print("ok", last, flush=True)

asyncio.run(main())
"""


def _append_until_killed(code: str, acks: int) -> int:
    """Run ``code`` in a child Python, SIGKILL it after ``acks`` "ok <seq>" lines; return the
    last seq it acknowledged."""
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        watchdog = threading.Timer(60, child.kill)  # A hung child must not hang the suite.
        watchdog.start()
        try:
            assert child.stdout is not None
            acked = 0
            for _ in range(acks):
                line = child.stdout.readline()
                assert line.startswith("ok "), f"child said {line!r}; stderr: {child.stderr}"
                acked = int(line.split()[1])
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
    assert child.returncode == -signal.SIGKILL
    return acked


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_every_acknowledged_append_survives_kill_9(journal_backend: JournalBackend) -> None:
    code = textwrap.dedent(_CHILD.format(setup=journal_backend.child_setup))
    # The child keeps appending after its acknowledgements, so the kill lands mid-append.
    acked = await anyio.to_thread.run_sync(_append_until_killed, code, 30)

    reopened = journal_backend.journal()
    await reopened.open()
    try:
        last = reopened.last_seq()
        assert last >= acked
        assert await read_all(reopened) == list(range(1, last + 1))
        # The journal takes appends again, numbered on from what survived.
        assert await reopened.append([entry(last + 1)]) == last + 1
    finally:
        await reopened.close()
