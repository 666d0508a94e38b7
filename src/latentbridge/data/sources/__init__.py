"""Public data sets: checksummed downloads and readers for FSDD, MNIST and MUSDB18-style stems.

Every problem with a file (or a URL) is raised as :class:`latentbridge.errors.DataError`, whose
message names it. Every name below is importable from ``latentbridge.data.sources``.

* :func:`download` (:mod:`~latentbridge.data.sources.downloads`) streams a URL to
  a partial file of its own beside the destination, checks its md5 / sha256 and renames it onto
  ``DEST`` in one step; a failed or interrupted download leaves no partial file behind. A file
  already present with the right checksum is not downloaded again.
* :class:`FSDD` (:mod:`~latentbridge.data.sources.fsdd`, Free Spoken Digit Dataset): a folder
  holding ``recordings/*.wav`` is used as is; ``download=True`` fetches the GitHub archive of
  commit ``26eb9aa`` and extracts its ``recordings/`` folder (whatever the archive's top
  folder is called).
* :class:`MNIST` (:mod:`~latentbridge.data.sources.mnist`): the four ``*-ubyte.gz`` files
  (md5-checked), read by :func:`read_idx`. When the 60,000 training images are absent (as on
  the offline development machine), ``"train"`` and ``"test"`` come from a seeded split of the
  10,000 official test images (8,000 / 2,000 by default); ``MNIST.offline_split`` is then True
  and a warning says so. Report figures obtained that way as such.
* :class:`DigitImages` (:mod:`~latentbridge.data.sources.digit_images`): written digits of one's own, images in
  class folders named by digit, framed as MNIST's; :func:`written_digits` picks MNIST or them for a folder. FSDD
  reads spoken digits of one's own too (named as FSDD's in sub-folders, or in class folders).
* :func:`pair_audio_visual` (:mod:`~latentbridge.data.sources.pairing`) pairs each
  spoken-digit clip of a split with an MNIST image of the same digit drawn from that split's
  images only.
* :class:`MUSDBStems` (:mod:`~latentbridge.data.sources.musdb`): reader for
  ``root/<track>/{mixture,drums,bass,other,vocals}.wav``.
* ``SPLITS`` (:mod:`~latentbridge.data.sources.common`): the split names, ``("train", "test")``.
"""

from __future__ import annotations

from latentbridge.data.sources.common import SPLITS
from latentbridge.data.sources.digit_images import DigitImages, written_digits
from latentbridge.data.sources.downloads import (
    default_data_dir,
    download,
    file_checksum,
)
from latentbridge.data.sources.fsdd import FSDD, FSDDItem
from latentbridge.data.sources.mnist import MNIST, MNIST_FILES, read_idx
from latentbridge.data.sources.musdb import MUSDB_STEMS, MUSDBStems
from latentbridge.data.sources.pairing import AVPair, pair_audio_visual

__all__ = [
    "FSDD",
    "DigitImages",
    "MNIST",
    "MNIST_FILES",
    "MUSDB_STEMS",
    "SPLITS",
    "AVPair",
    "FSDDItem",
    "MUSDBStems",
    "default_data_dir",
    "download",
    "file_checksum",
    "pair_audio_visual",
    "read_idx",
    "written_digits",
]
