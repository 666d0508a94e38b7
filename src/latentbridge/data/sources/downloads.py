"""Checksummed downloads and where downloaded data sets live.

:func:`download` streams a URL to a partial file of its own beside the destination
(``.DEST.<random>.partial``: two downloads of one file do not write into one), checks its md5 / sha256 and
renames it onto ``DEST`` in one step; a failed or interrupted download leaves no partial file behind (one killed
outright, SIGKILL, leaves it to the next download of ``DEST``, which removes it). A file already present with the
right checksum is not downloaded again.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from latentbridge.errors import DataError
from latentbridge.utils import file_checksum, temp_beside

log = logging.getLogger(__name__)

__all__ = ["default_data_dir", "download", "file_checksum"]

_CHUNK = 1 << 16


def default_data_dir() -> Path:
    """Where downloaded data sets live: ``$LATENTBRIDGE_DATA``, else
    ``$XDG_CACHE_HOME/latentbridge/data`` (``~/.cache/latentbridge/data``)."""
    env = os.environ.get("LATENTBRIDGE_DATA")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latentbridge" / "data"


def _expected(md5: str | None, sha256: str | None) -> list[tuple[str, str]]:
    out = []
    if md5:
        out.append(("md5", md5.lower()))
    if sha256:
        out.append(("sha256", sha256.lower()))
    return out


def download(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60,
    unchecked: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The body is streamed to a partial file of its own beside ``dest`` while its md5 / sha256 are
    computed; only when every given checksum matches is it renamed onto ``dest`` (one atomic
    rename). On a checksum mismatch, a network error, a short body or an interruption
    (including Ctrl-C) the partial file is removed; errors are raised as DataError naming the
    URL (and, for a mismatch, the expected and actual checksums).

    When ``dest`` already exists and matches every given checksum, nothing is downloaded. An
    existing file with another checksum is refused, not replaced: downloads reach ``dest`` only
    verified, so it is a file of the user's (their own data under the official name: a Fashion- or
    Kannada-MNIST file was about to be overwritten). Without any checksum an existing file is
    trusted and a download is only logged as unverified (``unchecked``: how it is checked instead, said in that line).
    A folder that cannot be written (read-only, full) is named as such, not as the URL's failure; a server that sends
    nothing for ``timeout`` seconds is said so.
    """
    dest = Path(dest)
    expected = _expected(md5, sha256)
    present = _present(dest, url, expected)
    if present is not None:
        return present
    if not expected:
        log.warning("downloading %s without a checksum of the file%s", url, f" ({unchecked})" if unchecked else "")
    from latentbridge.data.feature_cache import write_error
    from latentbridge.outputs import FolderLock

    if (error := write_error(dest.parent)) is not None:  # read-only or full: named as such (not as the lock's)
        raise DataError(dest.parent, f"cannot write the download there: {error.strerror or error}")

    # one process downloads DEST at a time (the next one waits, then finds it); taking the lock removes what a
    # download killed outright left (its partial file of megabytes stayed for good)
    lock = FolderLock(dest).acquire_waiting(f"downloads {url}")
    try:
        return _present(dest, url, expected) or _fetch(url, dest, expected, timeout)
    finally:
        lock.release()


def _present(dest: Path, url: str, expected: list[tuple[str, str]]) -> Path | None:
    """``dest`` where it is there with every expected checksum (or none expected); None where it is not there;
    DataError where it holds other data."""
    if dest.is_file():
        bad = [(alg, want, file_checksum(dest, alg)) for alg, want in expected]
        bad = [b for b in bad if b[1] != b[2]]
        if not bad:
            log.debug("%s already present, not downloading", dest)
            return dest
        alg, want, got = bad[0]
        raise DataError(dest, f"holds other data than {url} ({alg} {got}, expected {want}): not replaced; move it "
                              "away to download the official file, or use the files there without downloading")
    return None


def _fetch(url: str, dest: Path, expected: list[tuple[str, str]], timeout: float) -> Path:
    """The download itself (:func:`download`), under ``dest``'s lock."""
    try:  # (a folder read-only or full: it was the URL's "download interrupted")
        partial = temp_beside(dest)
        out = open(partial, "xb")
    except OSError as exc:
        raise DataError(dest.parent, f"cannot write the download there: {exc.strerror or exc}") from exc
    hashes = {alg: hashlib.new(alg) for alg, _ in expected}
    n_bytes = 0
    try:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "latentbridge"})
            with out, urllib.request.urlopen(req, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    try:
                        out.write(chunk)
                    except OSError as exc:  # the folder filled up
                        raise DataError(dest.parent, f"cannot write the download there after {n_bytes} bytes: "
                                                     f"{exc.strerror or exc}") from exc
                    n_bytes += len(chunk)
                    for h in hashes.values():
                        h.update(chunk)
            if length is not None and n_bytes != length:
                raise DataError(url, f"download interrupted: received {n_bytes} of {length} bytes")
        except DataError:
            raise
        except urllib.error.HTTPError as exc:
            raise DataError(url, f"download failed: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise DataError(url, f"download failed: {exc.reason}") from exc
        except TimeoutError as exc:  # (socket.timeout): no response, or the body stalled
            raise DataError(url, f"no data from the server for {timeout:g} s (after {n_bytes} bytes): download "
                                 "abandoned") from exc
        except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
            # connection resets, IncompleteRead, malformed URLs
            raise DataError(url, f"download interrupted after {n_bytes} bytes: {exc}") from exc
        for alg, want in expected:
            got = hashes[alg].hexdigest()
            if got != want:
                raise DataError(
                    url,
                    f"checksum mismatch: expected {alg} {want}, got {got} ({n_bytes} bytes); "
                    f"the download was discarded",
                )
        os.replace(partial, dest)
    finally:  # also on KeyboardInterrupt
        if partial.exists():
            partial.unlink()
    return dest
