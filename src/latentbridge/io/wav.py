"""RIFF/WAVE headers read by hand (numpy only): the frames a header declares, and the samples of a file whose header a
recorder never finalised.

A WAV recorder writes its header first, with the data chunk's size as a placeholder (0, or 0x7FFFFFFF), and rewrites it
when it stops; a recorder that loses power, a process killed mid-recording or a writer that rewrites the header block
by block leaves the placeholder or an early count. libsndfile trusts the header: a file holding 8 s of samples under a
header that declares 1 s read as 1 s, and one declaring 0 as empty. Where the data chunk is the file's last, the samples
present are read instead (PCM of 8-32 bits and IEEE float, as plain or extensible WAV), and the reader says so.
16-bit PCM read through libsndfile is scaled here (:func:`read_pcm16`): its own conversion to float is slower.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["WavLayout", "wav_layout", "declared_frames", "unfinalised_frames", "sample_width", "read_wav_samples",
           "STALE_MIN_BYTES", "read_pcm16", "PCM16_FORMATS"]

#: data-chunk sizes a recorder writes before it knows the size: none; 0xFFFFFFFF libsndfile reads to the end itself
PLACEHOLDER_MIN = 0x7FFFF000
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
#: bytes after a counted data chunk that make it a count never finalised: fewer are a pad byte, a sector's zero fill or
#: a tag appended to the file (ID3v1's 128 bytes), not samples (an 8-bit mono file of odd length read one sample more)
STALE_MIN_BYTES = 8192


#: how the tags some programs append after a WAV file's RIFF chunk begin (ID3v2, ID3v1, APE)
TAG_MAGICS = (b"ID3", b"TAG", b"APETAGEX")
#: names of RIFF/WAVE files: a Broadcast WAV's .bwf (and .wave) too, which were refused as "not an audio file"
WAV_SUFFIXES = (".wav", ".wave", ".bwf")


@dataclass(frozen=True)
class WavLayout:
    fmt_tag: int  # 1 PCM, 3 IEEE float (an extensible header's sub-format)
    channels: int
    sample_rate: int
    bits: int
    block_align: int
    data_offset: int  # where the samples start
    declared_bytes: int  # the data chunk's size as its header says
    present_bytes: int  # bytes from the data offset to the end of the file
    last: bool  # no chunk follows the declared end of the data: the bytes after it are samples
    riff_end: int = 0  # where the RIFF chunk ends as its header says (its size + 8)
    after: bytes = b""  # the first bytes after the declared data (and its pad byte)


def layout_codec(layout: WavLayout) -> str:
    """How a WAV layout's samples are stored, as soundfile's subtype names it (``PCM_16``, ``FLOAT``, ...)."""
    if layout.fmt_tag == 3:
        return "DOUBLE" if layout.bits == 64 else "FLOAT"
    return "PCM_U8" if layout.bits == 8 else f"PCM_{layout.bits}"


def _chunk_follows(f, pos: int, file_size: int) -> bool:
    """Whether a chunk header (four ASCII characters and a size that fits in the file) starts at ``pos``."""
    if pos + 8 > file_size:
        return False
    f.seek(pos)
    head = f.read(8)
    cid, size = head[:4], struct.unpack("<I", head[4:8])[0]
    return all(32 <= b < 127 for b in cid) and size <= file_size - pos - 8


def wav_layout(path: str | Path) -> WavLayout | None:
    """The format and data chunk of a RIFF/WAVE file; None for another file, RF64, or a header cut short."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            fmt = None
            pos = 12
            while pos + 8 <= file_size:
                f.seek(pos)
                ch = f.read(8)
                cid, size = ch[:4], struct.unpack("<I", ch[4:8])[0]
                if cid == b"fmt ":
                    raw = f.read(min(size, 40))
                    if len(raw) < 16:
                        return None
                    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", raw[:16])
                    if tag == _EXTENSIBLE and len(raw) >= 26:
                        tag = struct.unpack("<H", raw[24:26])[0]  # the sub-format GUID's first two bytes
                    fmt = (tag, channels, rate, bits, align)
                elif cid == b"data":
                    if fmt is None:
                        return None
                    offset = pos + 8
                    last = size >= PLACEHOLDER_MIN or not _chunk_follows(f, offset + size + (size & 1), file_size)
                    f.seek(offset + size + (size & 1))
                    return WavLayout(*fmt, data_offset=offset, declared_bytes=size,
                                     present_bytes=file_size - offset, last=last,
                                     riff_end=struct.unpack("<I", head[4:8])[0] + 8, after=f.read(8))
                pos += 8 + size + (size & 1)
    except (OSError, struct.error):
        return None
    return None


def declared_frames(layout: WavLayout | None) -> int | None:
    """Frames the header declares; None where it does not know them (a placeholder size, no block size)."""
    if layout is None or not layout.block_align or layout.declared_bytes == 0 \
            or layout.declared_bytes >= PLACEHOLDER_MIN:
        return None
    return layout.declared_bytes // layout.block_align


def sample_width(layout: WavLayout) -> int | None:
    """Bytes per sample where :func:`read_wav_samples` decodes them (PCM of 1-4 bytes, a 20-bit sample in 3 of
    them; IEEE float of 4 or 8), else None."""
    if layout.channels < 1 or layout.block_align < 1 or layout.block_align % layout.channels:
        return None
    width = layout.block_align // layout.channels
    ok = (layout.fmt_tag == _PCM and width in (1, 2, 3, 4)) or (layout.fmt_tag == _FLOAT and width in (4, 8))
    return width if ok else None


def unfinalised_frames(layout: WavLayout | None) -> int | None:
    """The frames a file holds where its header was never finalised: a placeholder size (0, 0x7FFFF000 up to but not
    0xFFFFFFFF) or a size under the bytes present with no chunk after it; None where the header is right (its RIFF
    size ending the RIFF chunk right after the data as declared, and a tag after it: :data:`TAG_MAGICS`), the
    samples are not plain PCM or float, or libsndfile reads them to the end itself (0xFFFFFFFF)."""
    if layout is None or not layout.last or sample_width(layout) is None \
            or layout.declared_bytes == 0xFFFFFFFF:
        return None
    present = layout.present_bytes // layout.block_align
    declared = layout.declared_bytes
    placeholder = declared == 0 or declared >= PLACEHOLDER_MIN
    if not placeholder and layout.riff_end == layout.data_offset + declared + (declared & 1) and \
            layout.after.startswith(TAG_MAGICS):  # both sizes written and a tag after them: finalised, the tag no
        return None  # samples (an ID3 tag with cover art was 0.9 s of "audio"; a writer killed mid-way that kept both
        # sizes up to date leaves samples there, read whole)
    if present and (placeholder or layout.present_bytes - declared - (declared & 1) >= STALE_MIN_BYTES):
        return present
    return None


def read_wav_samples(path: str | Path, layout: WavLayout, frames: int, start: int = 0) -> np.ndarray:
    """``(frames, channels)`` float32 samples (full scale 1, as libsndfile scales them) from frame ``start`` of
    ``layout``'s data: PCM (8-bit unsigned, 16/24/32-bit signed) or IEEE float (:func:`sample_width`)."""
    n, width = frames * layout.channels, sample_width(layout)
    offset = layout.data_offset + int(start) * layout.block_align
    if width is None:
        raise ValueError(f"{path}: samples of format {layout.fmt_tag} in {layout.block_align}-byte frames of "
                         f"{layout.channels} channels are not decoded here")
    if layout.fmt_tag == _PCM and width == 3:
        raw = np.fromfile(path, dtype=np.uint8, count=3 * n, offset=offset).reshape(-1, 3)
        ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8) | (raw[:, 2].astype(np.int32) << 16))
        x = ((ints << 8) >> 8).astype(np.float32) / np.float32(2 ** 23)
    else:
        dtype = {(_PCM, 1): "u1", (_PCM, 2): "<i2", (_PCM, 4): "<i4", (_FLOAT, 4): "<f4",
                 (_FLOAT, 8): "<f8"}[(layout.fmt_tag, width)]
        x = np.fromfile(path, dtype=dtype, count=n, offset=offset)
        if layout.fmt_tag == _PCM:
            x = (x.astype(np.float32) - 128) / np.float32(128) if width == 1 else \
                (x.astype(np.float64) / 2.0 ** (8 * width - 1)).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32).reshape(frames, layout.channels)


#: containers whose 16-bit PCM :func:`read_pcm16` reads (libsndfile's float read of FLAC or AIFF is as fast)
PCM16_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64"})
#: frames per block of :func:`read_pcm16`
_PCM16_BLOCK = 1 << 18


def read_pcm16(sound_file, frames: int) -> np.ndarray:
    """``(frames read, channels)`` float32 samples of an open ``soundfile.SoundFile`` of 16-bit PCM, read as integers
    block by block and scaled by 2^-15: bit for bit libsndfile's float read (each sample / 32768), about five times
    faster (its conversion took 58 ms of the 60 ten-second recordings' 0.36-s feature path on one core, this 11 ms).
    Reads at most ``frames``; fewer where the file holds fewer."""
    channels = int(sound_file.channels)
    out = np.empty((max(0, frames), channels), dtype=np.float32)
    block = np.empty((max(1, min(frames, _PCM16_BLOCK)), channels), dtype=np.int16)
    n = 0
    while n < frames:
        got = sound_file.read(out=block[:min(len(block), frames - n)])
        if not len(got):
            break
        np.multiply(got, np.float32(2.0 ** -15), out=out[n:n + len(got)])
        n += len(got)
    return out[:n]


#: libsndfile refuses a file name of this many bytes or more ("Supplied filename too long"): such a file is opened first
SNDFILE_NAME_LIMIT = 1024


def soundfile_source(path) -> bytes | int:
    """What ``soundfile`` opens for ``path``: its name as bytes (a name that is not UTF-8 opened as it is), or, for a
    path of :data:`SNDFILE_NAME_LIMIT` bytes or more (legal on Linux up to 4,096), a descriptor of the file opened here,
    closed with the SoundFile (such recordings were "unreadable or truncated")."""
    name = os.fsencode(path)
    return name if len(name) < SNDFILE_NAME_LIMIT else os.open(name, os.O_RDONLY)
