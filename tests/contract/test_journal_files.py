"""What only the file journal and file snapshot store do: torn tails, damage found by the CRC or
the SHA-256, segment files, the directory lock, and where ``journal_from_url`` puts them."""

import logging
import struct
import zlib
from pathlib import Path

import pytest

from memetrade.adapters.journal import journal_from_url
from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
from memetrade.adapters.journal.files import FileJournal
from memetrade.adapters.journal.postgres import PostgresJournal, PostgresSnapshotStore
from memetrade.adapters.journal.records import APPEND_START, HEADER_SIZE, encode
from memetrade.ports import JournalCorruptError, StorageError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal-*.log"))


def size(*entries: bytes) -> int:
    """Bytes of the record of one append of ``entries``."""
    return len(encode(entries, 1))


def legacy(entries: list[bytes], first_seq: int) -> bytes:
    """``entries`` in the records of journals written before an append became one record:
    one record per entry, the first marked as the append's start."""
    out = b""
    for i, payload in enumerate(entries):
        word, seq = len(payload) | (APPEND_START if i == 0 else 0), first_seq + i
        crc = zlib.crc32(payload, zlib.crc32(struct.pack("<IQ", word, seq)))
        out += struct.pack("<IIQ", word, crc, seq) + payload
    return out


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(data)


async def written(directory: Path, *appends: list[bytes], segment_bytes: int = 1 << 20) -> None:
    """Create a journal in ``directory`` holding ``appends``, one append call each."""
    journal = FileJournal(directory, segment_bytes=segment_bytes)
    await journal.open()
    try:
        for entries in appends:
            await journal.append(entries)
    finally:
        await journal.close()


async def contents(directory: Path) -> list[tuple[int, bytes]]:
    journal = FileJournal(directory)
    await journal.open()
    try:
        return await journal.read(1, 1_000)
    finally:
        await journal.close()


# -- torn tails -----------------------------------------------------------------------------------


async def test_half_a_record_at_the_end_is_cut_off_and_appends_continue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await written(tmp_path, [b"one"], [b"two"], [b"three"])
    (segment,) = segments(tmp_path)
    size = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(encode([b"four, torn"], 4)[: HEADER_SIZE + 3])

    journal = FileJournal(tmp_path)
    with caplog.at_level(logging.WARNING):
        await journal.open()
    try:
        assert "torn tail of 19 bytes" in caplog.text
        assert segment.stat().st_size == size
        assert journal.last_seq() == 3
        assert await journal.append([b"four"]) == 4
        assert await journal.read(1, 10) == [(1, b"one"), (2, b"two"), (3, b"three"), (4, b"four")]
    finally:
        await journal.close()


async def test_an_append_cut_short_is_dropped_whole(tmp_path: Path) -> None:
    await written(tmp_path, [b"a"], [b"b1", b"b2", b"b3"])
    (segment,) = segments(tmp_path)
    # Cut inside b3: the append was never acknowledged, so none of it stays.
    with segment.open("r+b") as file:
        file.truncate(segment.stat().st_size - 1)
    assert await contents(tmp_path) == [(1, b"a")]


async def test_garbage_after_the_last_record_is_cut_off(tmp_path: Path) -> None:
    await written(tmp_path, [b"a"], [b"b"])
    (segment,) = segments(tmp_path)
    with segment.open("ab") as file:
        file.write(b"\xde\xad\xbe\xef" * 100)
    assert await contents(tmp_path) == [(1, b"a"), (2, b"b")]


async def test_a_damaged_last_append_counts_as_torn(tmp_path: Path) -> None:
    # Damage in the last append looks like a torn write of it, so it is cut off, not refused.
    await written(tmp_path, [b"a"], [b"b"], [b"last", b"append"])
    (segment,) = segments(tmp_path)
    flip(segment, 2 * size(b"a") + HEADER_SIZE)
    assert await contents(tmp_path) == [(1, b"a"), (2, b"b")]


# -- damage to acknowledged entries ---------------------------------------------------------------


async def test_a_flipped_byte_in_a_middle_record_stops_the_journal_from_opening(
    tmp_path: Path,
) -> None:
    await written(tmp_path, [b"first"], [b"middle"], [b"last"])
    (segment,) = segments(tmp_path)
    middle = size(b"first")
    flip(segment, middle + HEADER_SIZE + 2)

    journal = FileJournal(tmp_path)
    with pytest.raises(JournalCorruptError, match=rf"{segment.name}.*byte {middle}.*entry 2"):
        await journal.open()
    # Nothing was cut: the damage is left as found, and the journal can be opened after repair.
    assert segment.stat().st_size == middle + size(b"middle") + size(b"last")
    await journal.close()


async def test_an_intact_record_with_the_wrong_number_is_never_taken_for_a_torn_tail(
    tmp_path: Path,
) -> None:
    await written(tmp_path, [b"a"], [b"b"])
    (segment,) = segments(tmp_path)
    with segment.open("ab") as file:
        file.write(encode([b"from elsewhere"], 9))
    with pytest.raises(JournalCorruptError, match="entry 3: numbered 9 where 3 was expected"):
        await FileJournal(tmp_path).open()


async def test_damage_in_an_older_segment_stops_the_replay_there(tmp_path: Path) -> None:
    await written(tmp_path, *([b"x" * 100] for _ in range(40)), segment_bytes=1000)
    first, *_ = segments(tmp_path)
    flip(first, 3 * size(b"x" * 100) + HEADER_SIZE)

    journal = FileJournal(tmp_path, segment_bytes=1000)
    await journal.open()  # Only the last segment is scanned at open.
    try:
        assert len(await journal.read(1, 3)) == 3
        with pytest.raises(JournalCorruptError, match="entry 4: checksum mismatch"):
            await journal.read(1, 10)
    finally:
        await journal.close()


async def test_a_missing_segment_is_found_by_the_replay(tmp_path: Path) -> None:
    await written(tmp_path, *([b"x" * 100] for _ in range(40)), segment_bytes=1000)
    files = segments(tmp_path)
    assert len(files) > 3
    files[1].unlink()

    journal = FileJournal(tmp_path, segment_bytes=1000)
    await journal.open()
    try:
        with pytest.raises(JournalCorruptError, match="entries are missing"):
            await journal.read(1, 100)
    finally:
        await journal.close()


async def test_damage_in_an_acknowledged_append_of_many_entries_is_not_taken_for_a_torn_tail(
    tmp_path: Path,
) -> None:
    # The intact append after the damaged one is numbered 202, far more entries on than the
    # bytes after it could hold records: only the CRC may decide it is an append start.
    await written(tmp_path, [b"a"], [b"b"] * 200, [b"c"])
    (segment,) = segments(tmp_path)
    flip(segment, size(b"a") + HEADER_SIZE + 5)
    with pytest.raises(JournalCorruptError, match="entry 2: checksum mismatch"):
        await FileJournal(tmp_path).open()


async def test_reads_resume_inside_an_append(tmp_path: Path) -> None:
    await written(tmp_path, [b"%d" % i for i in range(1, 8)], [b"8", b"9"])
    journal = FileJournal(tmp_path)
    await journal.open()
    try:
        got = []
        while len(got) < 9:
            got += await journal.read(len(got) + 1, 2)
        assert got == [(i, b"%d" % i) for i in range(1, 10)]
        assert await journal.read(4, 1) == [(4, b"4")]
    finally:
        await journal.close()


async def test_a_journal_of_one_record_per_entry_is_read_and_appended_to(tmp_path: Path) -> None:
    # The format of journals written before an append became one record.
    segment = tmp_path / "journal-00000000000000000001.log"
    segment.write_bytes(legacy([b"a"], 1) + legacy([b"b1", b"b2"], 2))
    journal = FileJournal(tmp_path)
    await journal.open()
    try:
        assert journal.last_seq() == 3
        assert await journal.append([b"c"]) == 4
        assert await journal.read(1, 10) == [(1, b"a"), (2, b"b1"), (3, b"b2"), (4, b"c")]
    finally:
        await journal.close()


async def test_a_torn_append_of_one_record_per_entry_is_cut_at_its_damage(tmp_path: Path) -> None:
    segment = tmp_path / "journal-00000000000000000001.log"
    segment.write_bytes(legacy([b"a"], 1) + legacy([b"b1", b"b2", b"b3"], 2)[:-1])
    assert await contents(tmp_path) == [(1, b"a"), (2, b"b1"), (3, b"b2")]


# -- segments and the lock ------------------------------------------------------------------------


async def test_segments_rotate_and_truncation_deletes_whole_files_but_the_last(
    tmp_path: Path,
) -> None:
    journal = FileJournal(tmp_path, segment_bytes=1000)
    await journal.open()
    try:
        for _ in range(40):
            await journal.append([b"x" * 100] * 2)  # 221 bytes an append: 5 appends a segment.
        names = [p.name for p in segments(tmp_path)]
        assert names[:2] == ["journal-00000000000000000001.log", "journal-00000000000000000011.log"]
        assert len(names) == 8

        await journal.truncate_before(35)  # Entry 35 is in the segment starting at 31.
        assert segments(tmp_path)[0].name == "journal-00000000000000000031.log"
        await journal.truncate_before(10_000)
        assert [p.name for p in segments(tmp_path)] == [names[-1]]
        assert [seq for seq, _ in await journal.read(71, 100)] == list(range(71, 81))
    finally:
        await journal.close()


async def test_a_crash_just_after_starting_a_segment_leaves_a_usable_journal(
    tmp_path: Path,
) -> None:
    await written(tmp_path, *([b"x" * 100] for _ in range(12)), segment_bytes=1000)
    assert len(segments(tmp_path)) == 2  # Entries 1-9 and 10-12, 119 bytes a record.
    (tmp_path / "journal-00000000000000000013.log").touch()  # Created, nothing written yet.

    journal = FileJournal(tmp_path, segment_bytes=1000)
    await journal.open()
    try:
        assert journal.last_seq() == 12
        await journal.truncate_before(10_000)  # Keeps the segment holding entry 12.
        assert [seq for seq, _ in await journal.read(10, 10)] == [10, 11, 12]
        assert await journal.append([b"y"]) == 13
        assert (tmp_path / "journal-00000000000000000013.log").stat().st_size > 0
    finally:
        await journal.close()


async def test_a_second_opener_of_the_directory_is_refused(tmp_path: Path) -> None:
    first = FileJournal(tmp_path)
    await first.open()
    try:
        with pytest.raises(StorageError, match="open in another process"):
            await FileJournal(tmp_path).open()
    finally:
        await first.close()
    second = FileJournal(tmp_path)  # Closing released the lock.
    await second.open()
    await second.close()


# -- snapshot files -------------------------------------------------------------------------------


async def test_unusable_snapshot_files_are_skipped_with_a_warning_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileSnapshotStore(tmp_path, keep=5)
    await store.open()
    try:
        for seq in (1, 2, 3, 4):
            await store.save(seq, b"state %d" % seq)
        newest = tmp_path / "snapshot-00000000000000000004.bin"
        newest.write_bytes(newest.read_bytes()[:-1])  # Cut short.
        # Renamed to a seq it was not taken at.
        (tmp_path / "snapshot-00000000000000000002.bin").replace(
            tmp_path / "snapshot-00000000000000000003.bin"
        )
        with caplog.at_level(logging.WARNING):
            assert await store.load_latest_valid() == (1, b"state 1")
    finally:
        await store.close()
    assert "snapshot-00000000000000000004.bin is unusable (6 payload bytes where 7" in caplog.text
    assert "snapshot-00000000000000000003.bin is unusable (its header says seq 2" in caplog.text


async def test_a_snapshot_left_half_written_by_a_crash_is_removed(tmp_path: Path) -> None:
    leftover = tmp_path / "snapshot-00000000000000000009.bin.tmp"
    leftover.write_bytes(b"half")
    store = FileSnapshotStore(tmp_path)
    await store.open()
    try:
        assert not leftover.exists()
        assert await store.load_latest_valid() is None
    finally:
        await store.close()


# -- journal_from_url -----------------------------------------------------------------------------


def test_journal_from_url_picks_the_backend() -> None:
    journal, snapshots = journal_from_url("sqlite:///data/memetrade.db")
    assert isinstance(journal, FileJournal)
    assert isinstance(snapshots, FileSnapshotStore)
    assert repr(journal) == "FileJournal('data/memetrade.db.exchange')"
    assert repr(snapshots) == "FileSnapshotStore('data/memetrade.db.exchange')"

    journal, snapshots = journal_from_url("postgresql://me:secret@db:5433/trade")
    assert isinstance(journal, PostgresJournal)
    assert isinstance(snapshots, PostgresSnapshotStore)
    assert "secret" not in repr(journal)

    with pytest.raises(ValueError, match="expected sqlite"):
        journal_from_url("mysql://db/trade")
