"""The file journal's record format, and reading records back from a segment file.

A record is ``[length u32][crc32 u32][seq u64][payload]``, little-endian, 16 bytes of header,
and holds the entries of one ``append`` call: its payload is a MessagePack array of their bytes
and ``seq`` is the number of the first. The CRC-32 covers the length word, the seq and the
payload, so a flipped bit anywhere but in the CRC itself is caught, and so is a flipped CRC.

One record per append rather than one per entry: framing each entry on its own took two CRC
calls and two struct packs per entry, on a thread that holds the GIL while the engine waits;
one MessagePack encode and one CRC per append cut the instructions per command of the engine +
journal benchmark (``bench/engine_journal.py``) by 5.5 %.

The top two bits of the length word are flags; the other 30 bits are the payload's length.
``APPEND_START`` marks the first record of an append call and ``BATCH`` a record holding an
array of entries. Records written by this module carry both. A record without ``BATCH`` holds
one entry as its payload: the format of journals written before appends became one record, still
read, so an existing journal replays after an upgrade.

The append-start mark is what tells a torn tail from damage in acknowledged entries: a crash can
only tear the last append, and within it no record after the first carries the mark. So an
intact marked record after a damaged one means the damage is in an earlier, acknowledged append
(see ``find_append_start`` and ``FileJournal.open``).
"""

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Final

import msgspec

__all__ = [
    "APPEND_START",
    "HEADER_SIZE",
    "MAX_RECORD_BYTES",
    "SegmentReader",
    "encode",
    "find_append_start",
]

_HEADER: Final = struct.Struct("<IIQ")
_LENGTH_AND_SEQ: Final = struct.Struct("<IQ")
HEADER_SIZE: Final = _HEADER.size
APPEND_START: Final = 0x8000_0000
BATCH: Final = 0x4000_0000
MAX_RECORD_BYTES: Final = BATCH - 1
# Read size of a segment reader. Large enough that a read costs little next to parsing what it
# returns; small enough to leave memory alone when a read wants ten entries.
_BLOCK: Final = 1 << 20

_encode_entries = msgspec.msgpack.Encoder().encode
_decode_entries = msgspec.msgpack.Decoder(list[bytes]).decode


def encode(entries: Sequence[bytes], first_seq: int) -> bytes:
    """The record of one append call: ``entries`` numbered from ``first_seq``."""
    payload = _encode_entries(entries)
    size = len(payload)
    if size > MAX_RECORD_BYTES:
        raise ValueError(f"an append holds at most {MAX_RECORD_BYTES} bytes, not {size}")
    word = size | APPEND_START | BATCH
    crc = zlib.crc32(payload, zlib.crc32(_LENGTH_AND_SEQ.pack(word, first_seq)))
    return _HEADER.pack(word, crc, first_seq) + payload


class SegmentReader:
    """Reads the records of one segment file in order, from byte ``offset``, expecting the
    first to be numbered ``seq``.

    Iterating yields ``(seq, entry)`` for each entry of each record and stops at the end of the
    file or at the first record that is not intact. ``offset`` and ``seq`` point at the record
    whose entries are being yielded, and just past it once all are (so a later read can resume
    there, skipping the entries it has had); after a stop at a bad record, ``damage`` says what
    is wrong with it and ``misnumbered`` is True when the record itself is intact but carries
    the wrong number (entries missing or repeated: never the work of a torn write).
    """

    def __init__(self, file: BinaryIO, offset: int, seq: int) -> None:
        self._file = file
        self.offset = offset
        self.seq = seq
        self.damage: str | None = None
        self.misnumbered = False

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        file, unpack, crc32 = self._file, _HEADER.unpack_from, zlib.crc32
        file.seek(self.offset)
        buf = b""
        view = memoryview(buf)
        pos = 0
        at_eof = False
        while True:
            available = len(buf) - pos
            if available >= HEADER_SIZE:
                word, crc, seq = unpack(buf, pos)
                end = pos + HEADER_SIZE + (word & MAX_RECORD_BYTES)
                if end <= len(buf):
                    if crc != crc32(view[pos + 8 : end], crc32(view[pos : pos + 4])):
                        self.damage = "checksum mismatch"
                        return
                    if seq != self.seq:
                        self.damage = f"numbered {seq} where {self.seq} was expected"
                        self.misnumbered = True
                        return
                    entries = _entries(word, view[pos + HEADER_SIZE : end])
                    if entries is None:
                        self.damage = "intact, but not an array of entries"
                        return
                    for i, entry in enumerate(entries):
                        yield seq + i, entry
                    self.offset += end - pos
                    self.seq += len(entries)
                    pos = end
                    continue
                wanted = end - len(buf)
            else:
                wanted = HEADER_SIZE - available
            if at_eof:
                if available:
                    self.damage = f"cut short: {available} bytes of a record at the end"
                return
            size = max(_BLOCK, wanted)
            chunk = file.read(size)
            at_eof = len(chunk) < size
            buf = buf[pos:] + chunk
            view = memoryview(buf)
            pos = 0


def _entries(word: int, payload: memoryview) -> list[bytes] | None:
    """The entries of an intact record; None if its payload is not what its flags say."""
    if not word & BATCH:
        return [bytes(payload)]
    try:
        entries = _decode_entries(payload)
    except msgspec.DecodeError:
        return None
    return entries or None


def find_append_start(data: bytes, start: int, min_seq: int) -> int | None:
    """The offset in ``data``, from ``start`` on, of the first intact record that begins an
    append and is numbered ``min_seq`` or more; None if there is none.

    Tries every offset (record boundaries after damage are unknown), so it costs time in
    proportion to ``len(data) - start``: only damaged tails are searched, and a torn one is at
    most one append long.
    """
    unpack, crc32 = _HEADER.unpack_from, zlib.crc32
    view = memoryview(data)
    for pos in range(start, len(data) - HEADER_SIZE + 1):
        word, crc, seq = unpack(data, pos)
        # The entries numbered min_seq to seq - 1 lie before ``pos``, each in a byte at least:
        # a cheap bound that skips most offsets before the CRC decides.
        if not word & APPEND_START or not 0 <= seq - min_seq <= pos:
            continue
        end = pos + HEADER_SIZE + (word & MAX_RECORD_BYTES)
        if end <= len(data) and crc == crc32(view[pos + 8 : end], crc32(view[pos : pos + 4])):
            return pos
    return None
