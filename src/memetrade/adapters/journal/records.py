"""The file journal's record format, and reading records back from a segment file.

A record is ``[length u32][crc32 u32][seq u64][payload]``, little-endian, 16 bytes of header.
The top bit of the length word marks the first record of an ``append`` call; the other 31 bits
are the payload's length. The CRC-32 covers the length word, the seq and the payload, so a
flipped bit anywhere but in the CRC itself is caught, and so is a flipped CRC.

The append-start mark is what tells a torn tail from damage in acknowledged entries: a crash can
only tear the last append, and within it no record after the first carries the mark. So an
intact marked record after a damaged one means the damage is in an earlier, acknowledged append
(see ``find_append_start`` and ``FileJournal.open``).
"""

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Final

__all__ = [
    "APPEND_START",
    "HEADER_SIZE",
    "MAX_ENTRY_BYTES",
    "SegmentReader",
    "encode",
    "find_append_start",
]

_HEADER: Final = struct.Struct("<IIQ")
_LENGTH_AND_SEQ: Final = struct.Struct("<IQ")
HEADER_SIZE: Final = _HEADER.size
APPEND_START: Final = 0x8000_0000
MAX_ENTRY_BYTES: Final = APPEND_START - 1
# Read size of a segment reader. Large enough that a read costs little next to parsing what it
# returns; small enough to leave memory alone when a read wants ten entries.
_BLOCK: Final = 1 << 20


def encode(entries: Sequence[bytes], first_seq: int) -> bytes:
    """The records of one append call: ``entries`` numbered from ``first_seq``."""
    pack_header, pack_crc_part, crc32 = _HEADER.pack, _LENGTH_AND_SEQ.pack, zlib.crc32
    parts: list[bytes] = []
    word_flag = APPEND_START
    for seq, payload in enumerate(entries, first_seq):
        size = len(payload)
        if size > MAX_ENTRY_BYTES:
            raise ValueError(f"a journal entry holds at most {MAX_ENTRY_BYTES} bytes, not {size}")
        word = size | word_flag
        word_flag = 0
        parts.append(pack_header(word, crc32(payload, crc32(pack_crc_part(word, seq))), seq))
        parts.append(payload)
    return b"".join(parts)


class SegmentReader:
    """Reads the records of one segment file in order, from byte ``offset``, expecting the
    first to be numbered ``seq``.

    Iterating yields ``(seq, payload)`` and stops at the end of the file or at the first record
    that is not intact. ``offset`` and ``seq`` always point just past the last record yielded
    (so they can resume a later read); after a stop at a bad record, ``damage`` says what is
    wrong with it and ``misnumbered`` is True when the record itself is intact but carries the
    wrong number (entries missing or repeated: never the work of a torn write).
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
                end = pos + HEADER_SIZE + (word & MAX_ENTRY_BYTES)
                if end <= len(buf):
                    if crc != crc32(view[pos + 8 : end], crc32(view[pos : pos + 4])):
                        self.damage = "checksum mismatch"
                        return
                    if seq != self.seq:
                        self.damage = f"numbered {seq} where {self.seq} was expected"
                        self.misnumbered = True
                        return
                    self.offset += end - pos
                    self.seq += 1
                    yield seq, buf[pos + HEADER_SIZE : end]
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
        # Every record takes at least HEADER_SIZE bytes, which bounds the plausible numbers.
        if not word & APPEND_START or not 0 <= seq - min_seq <= (len(data) - pos) // HEADER_SIZE:
            continue
        end = pos + HEADER_SIZE + (word & MAX_ENTRY_BYTES)
        if end <= len(data) and crc == crc32(view[pos + 8 : end], crc32(view[pos : pos + 4])):
            return pos
    return None
