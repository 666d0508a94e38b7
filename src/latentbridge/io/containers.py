"""The frames the header of an AIFF, AU, Wave64 or RF64 file declares, read by hand (struct only).

libsndfile reads a file of these formats whose samples were cut off (a copy interrupted, a recorder that lost power
after writing its header) as the frames present and reports those as the file's length: half a recording read as a
whole one. :func:`declared_container_frames` gives the count the header declares, so the reader can compare (WAV
files: :func:`latentbridge.io.wav.declared_frames`).
"""

from __future__ import annotations

import struct
from pathlib import Path

from latentbridge.io.wav import WavLayout, declared_frames

__all__ = ["CONTAINER_SUFFIXES", "declared_container_frames", "declared_frames_of"]

#: file names whose headers :func:`declared_container_frames` reads
CONTAINER_SUFFIXES = (".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".rf64")
#: bytes per sample of the AU encodings (1 u-law, 2-5 PCM of 8-32 bits, 6 float, 7 double, 27 A-law)
_AU_WIDTH = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
_AU_UNKNOWN = 0xFFFFFFFF
#: how the GUIDs of a Wave64 file's chunks begin
_W64_FMT, _W64_DATA = b"fmt ", b"data"
_HEAD = 4096  # bytes read to find the chunks before the samples


def declared_frames_of(path: Path, layout: WavLayout | None) -> int | None:
    """Frames the header of an audio file declares: a WAV file's (its ``layout``), or another container's."""
    return declared_frames(layout) if layout is not None else declared_container_frames(path)


def declared_container_frames(path: str | Path) -> int | None:
    """Frames the header of ``path`` declares (AIFF/AIFC: the COMM chunk's count; AU: the data size over the frame
    size; Wave64: the data chunk's size over the block size; RF64: the ds64 chunk's data size over the block size);
    None for other files, or where the header does not say (an AU written as a stream, a compressed AU, an
    unexpected layout)."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return None  # the reader names the problem
    try:
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(head)
        if head[:4] == b".snd":
            return _au(head)
        if head[:4] == b"riff" and head[24:28] == b"wave":
            return _w64(head)
        if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
            return _rf64(head)
    except struct.error:  # a header shorter than its fields
        return None
    return None


def _aiff(head: bytes) -> int | None:
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack(">I", head[pos + 4:pos + 8])[0]
        if cid == b"COMM":
            return struct.unpack(">I", head[pos + 10:pos + 14])[0]
        pos += 8 + size + (size & 1)
    return None


def _au(head: bytes) -> int | None:
    size, encoding, _rate, channels = struct.unpack(">IIII", head[8:24])
    width = _AU_WIDTH.get(encoding)
    if size == _AU_UNKNOWN or width is None or channels < 1:
        return None
    return size // (width * channels)


def _w64(head: bytes) -> int | None:
    pos, align = 40, None  # after the riff GUID (16), its size (8) and the wave GUID (16)
    while pos + 24 <= len(head):
        guid, size = head[pos:pos + 16], struct.unpack("<Q", head[pos + 16:pos + 24])[0]
        if guid[:4] == _W64_FMT:
            align = struct.unpack("<H", head[pos + 36:pos + 38])[0]
        elif guid[:4] == _W64_DATA:
            return (size - 24) // align if align else None
        if size < 24:
            return None
        pos += (size + 7) // 8 * 8
    return None


def _rf64(head: bytes) -> int | None:
    pos, data_size = 12, None  # (the ds64 chunk's sample count is frames for some writers, samples for others)
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"ds64":
            data_size = struct.unpack("<Q", head[pos + 16:pos + 24])[0]
        elif cid == b"fmt ":
            align = struct.unpack("<H", head[pos + 20:pos + 22])[0]
            return data_size // align if data_size is not None and align else None
        pos += 8 + size + (size & 1)
    return None
