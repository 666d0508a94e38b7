"""Files in, arrays out: the first stage of the data flow (numpy only at import time).

* :mod:`latentbridge.io.audio`: list and read (with validation) audio files.
  :mod:`latentbridge.io.audio_write`: write them. :mod:`latentbridge.io.resampling`: the one resampler.
* :mod:`latentbridge.io.windows`: cut a recording, or a stream of blocks, into analysis windows; the short-recording
  rule.
* :mod:`latentbridge.io.capture`: audio blocks from an input device or a replayed recording.
* :mod:`latentbridge.io.events`: the event log of scored windows (CSV or SQLite).
* :mod:`latentbridge.io.vibration`: vibration CSVs. :mod:`latentbridge.io.masks`: crack-mask PNGs.
* :mod:`latentbridge.io.imzml`: ion images of imzML mass-spectrometry files (pyimzml, read lazily).
* :mod:`latentbridge.io.arrays`: (H, W, channels) maps from .npy / TIFF / PNG stacks, masks.

The package re-exports the public names of ``audio``, ``audio_write``, ``windows``, ``vibration`` and ``masks``; import
``capture``, ``events``, ``imzml`` and ``arrays`` as submodules. Importing this package imports neither torch nor librosa nor sounddevice, so the torch-free
edge scorer (:mod:`latentbridge.edge`) can use it on small devices.
"""

from __future__ import annotations

from latentbridge.io.audio import (
    ALL_CHANNELS,
    AUDIO_EXTENSIONS,
    SILENCE_LEVEL,
    AudioInfo,
    audio_info,
    read_audio,
    resample,
    select_channels,
)
from latentbridge.io.audio_write import write_audio, write_wav
from latentbridge.io.listing import list_audio_files
from latentbridge.io.levels import active_bounds, level_dbfs, peak_and_clipping, trim_silence, trimmed
from latentbridge.io.masks import read_mask_png, write_mask_png
from latentbridge.io.vibration import TIME_STEP_TOLERANCE, read_vibration_csv, write_vibration_csv
from latentbridge.io.windows import MIN_WINDOW_SHARE, PAD_MODES, WindowBuffer, check_recording_length, cut_windows

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "MIN_WINDOW_SHARE",
    "PAD_MODES",
    "ALL_CHANNELS",
    "SILENCE_LEVEL",
    "TIME_STEP_TOLERANCE",
    "WindowBuffer",
    "active_bounds",
    "audio_info",
    "check_recording_length",
    "cut_windows",
    "level_dbfs",
    "peak_and_clipping",
    "list_audio_files",
    "read_audio",
    "read_mask_png",
    "read_vibration_csv",
    "resample",
    "select_channels",
    "trim_silence",
    "trimmed",
    "write_audio",
    "write_mask_png",
    "write_vibration_csv",
    "write_wav",
]
