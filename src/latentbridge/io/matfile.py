"""Vibration recordings in MATLAB ``.mat`` files (scipy; no torch), as bearing test rigs and DAQ software save them.

Rules (:func:`read_mat_recording`):

* Files of MATLAB versions 4 to 7 (scipy's reader). A version 7.3 file (HDF5) is refused by name: save it with
  ``save(..., '-v7')``.
* Channels: the numeric vectors (``(T,)``, ``(T, 1)`` or ``(1, T)``) of the greatest length T, in the file's order
  (a test rig's drive-end and fan-end accelerometers: ``X097_DE_time``, ``X097_FE_time``), or, when a matrix is longer
  than every vector, its columns (rows when it is wider than long). Shorter vectors and scalars (a shaft speed) are
  not channels.
* Sample rate: a scalar named like a rate (``fs``, ``Fs``, ``sr``, ``sample_rate``, ``samplerate``,
  ``sampling_rate``, ``sampling_frequency``), else the rate given (``-o audio.csv_rate=HZ``, as for a CSV without a
  time column); both, when they differ, are an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError

_RATE_NAME = re.compile(r"(?i)(fs|sr|sample_?rate|sampling_?(rate|freq|frequency))")


def read_mat_recording(path: str | Path, sample_rate: float | None = None) -> tuple[np.ndarray, float]:
    """``(samples (T, C) float64, rate in Hz)`` of a ``.mat`` recording; DataError naming the file."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        content = loadmat(str(path), squeeze_me=False)
    except NotImplementedError:
        raise DataError(path, "a MATLAB 7.3 (HDF5) file, which this reader does not open: save it with "
                              "save(..., '-v7')") from None
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError, TypeError, OSError... for damaged files
        raise DataError(path, f"unreadable .mat file ({type(e).__name__}: {e})") from None
    arrays = {k: v for k, v in content.items() if not k.startswith("__") and isinstance(v, np.ndarray)
              and v.dtype.kind in "fiu" and v.size}
    rate = next((float(v.ravel()[0]) for k, v in arrays.items() if v.size == 1 and _RATE_NAME.fullmatch(k)), None)
    vectors = {k: v.ravel() for k, v in arrays.items() if v.ndim <= 2 and min(v.shape) == 1 and v.size > 1}
    matrices = {k: (v if v.shape[0] >= v.shape[1] else v.T) for k, v in arrays.items()
                if v.ndim == 2 and min(v.shape) > 1}
    longest = max((len(v) for v in vectors.values()), default=0)
    matrix = max(matrices.items(), key=lambda kv: kv[1].shape[0], default=None)
    if matrix is not None and matrix[1].shape[0] > longest:
        data = np.asarray(matrix[1], dtype=np.float64)
    elif longest:
        data = np.stack([v for v in vectors.values() if len(v) == longest], axis=1).astype(np.float64)
    else:
        found = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items()) or "no numeric arrays"
        raise DataError(path, f"no recording in the .mat file (numeric vectors or a matrix of samples; found {found})")
    if rate is not None and sample_rate is not None and abs(rate - float(sample_rate)) > 0.01 * float(sample_rate):
        raise DataError(path, f"the file gives {rate:g} Hz but {float(sample_rate):g} Hz was given (-o audio.csv_rate)")
    rate = rate if rate is not None else sample_rate
    if rate is None or not np.isfinite(rate) or rate <= 0:
        raise DataError(path, "a .mat recording without its sample rate (no scalar named fs, sample_rate, ...): give "
                              "it with -o audio.csv_rate=HZ")
    return data, float(rate)
