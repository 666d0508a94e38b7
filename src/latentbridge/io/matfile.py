"""Vibration recordings in MATLAB ``.mat`` files (scipy and h5py; no torch), as bearing test rigs and DAQ software
save them.

Rules (:func:`read_mat_recording`):

* Files of every MATLAB version: 4 to 7 through scipy's reader, 7.3 (HDF5, MATLAB's format for large variables)
  through h5py. Variables nested in structs, struct arrays and cell arrays are read too, named by their path
  (``bearing.gs``, ``Y(2).Data``, ``trials(1)``): rigs often save a struct holding the signal and its rate.
* Channels: the numeric vectors of the greatest length T, in the file's order (a test rig's drive-end and fan-end
  accelerometers: ``X097_DE_time``, ``X097_FE_time``; a 7.3 file lists its variables alphabetically) or, when every
  one is a name and a number (``ch1`` ... ``ch16``), in their numbers' order (MATLAB's ``save`` of a workspace and a
  7.3 file list ``ch1, ch10, ch11, ..., ch2``: a channel given by position was another sensor); or, when a
  matrix is as long as every vector or longer, its columns (rows when it is wider than long), then the vectors of its
  length (``acc`` of 8 columns and ``force``: 9 channels; the matrix was left out). Shorter vectors and scalars (a
  shaft speed) are not channels, nor is a time vector (strictly increasing: ``t``, ``time``) or a matrix's first
  column that is one; without a rate scalar, the rate is its step's (seconds; milliseconds when named so).
* Channel names, as a CSV's header names its columns (a model reads its channels by them:
  :mod:`latentbridge.io.columns`): the vectors' names (paths), less a first token holding digits that every one of
  them begins with, a rig's number of the recording (``X097_DE_time``, ``X097_FE_time`` -> ``DE_time``, ``FE_time``;
  ``X105_DE_time`` in the next file: the same channel). A matrix's columns have none: read by position, as a CSV
  without a header; beside vectors, ``acc(:, 1)``, ``acc(:, 2)``, ... and the vectors' names.
* Sample rate: a scalar whose name (its last part in a struct) is like a rate (``fs``, ``Fs``, ``sr``,
  ``sample_rate``, ``samplerate``, ``sampling_rate``, ``sampling_frequency``), else the rate given
  (``-o audio.csv_rate=HZ``, as for a CSV without a time column); both, when they differ, are an error. Rate
  scalars that disagree with each other (a struct per sensor) need the rate given. Without a rate scalar, a scalar
  named like a sample interval in seconds (``dt``, ``Ts``, ``delta_t``, ``sample_interval``, ``sampling_period``)
  gives it (its inverse: DAQ software saves the step; it went unread and the rate was asked for).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, reading_memory_error
from latentbridge.io.vibration import RATE_HINT, check_given_rate, pick_channels, snap_rate

_RATE_NAME = re.compile(r"(?i)(fs|sr|sample_?rate|sampling_?(rate|freq|frequency))")
#: a scalar sample interval in seconds: the rate is its inverse
_STEP_NAME = re.compile(r"(?i)(dt|ts|delta_?t|sampl(e|ing)_?(interval|period|step|time))")
_MAX_DEPTH = 8  # structs nested deeper than this are not searched
#: a first token holding digits (``X097`` of ``X097_DE_time``), before ``_`` or ``.``
_FILE_TOKEN = re.compile(r"([A-Za-z]*\d[A-Za-z0-9]*)[_.]")


def _flatten(value, name: str, out: dict[str, np.ndarray], depth: int = 0) -> None:
    """Numeric arrays of scipy's ``simplify_cells`` output, by path: structs are dicts, cells and struct arrays
    object arrays or lists."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not str(key).startswith("__"):
                _flatten(item, f"{name}.{key}" if name else str(key), out, depth + 1)
    elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        try:  # a cell array of numbers is an array of numbers
            numeric = np.asarray(value, dtype=np.float64) if len(value) else None
        except (TypeError, ValueError):
            numeric = None
        if numeric is not None:
            out[name] = numeric
            return
        items = list(value) if isinstance(value, (list, tuple)) else list(value.ravel(order="F"))
        for i, item in enumerate(items, start=1):
            _flatten(item, f"{name}({i})", out, depth + 1)
    elif isinstance(value, (np.ndarray, np.number, int, float)) and not isinstance(value, (bool, np.bool_)):
        array = np.asarray(value)
        if array.dtype.kind in "fiu" and array.size:
            out[name] = array


def _hdf5_arrays(path: Path) -> dict[str, np.ndarray]:
    """Numeric variables of a MATLAB 7.3 file by path (MATLAB stores arrays column-major: transposed back)."""
    import h5py

    out: dict[str, np.ndarray] = {}

    def visit(node, name: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(node, h5py.Group):
            for key in node:
                if not key.startswith("#"):  # #refs# holds what cells point to; #subsystem# MATLAB objects
                    visit(node[key], f"{name}.{key}" if name else key, depth + 1)
            return
        cls = node.attrs.get("MATLAB_class", b"")
        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
        if node.attrs.get("MATLAB_empty", 0) or cls in ("char", "logical"):
            return
        if h5py.check_dtype(ref=node.dtype) is not None:  # a cell array or struct array: references
            for i, ref in enumerate(np.asarray(node[()]).T.ravel(order="F"), start=1):
                if ref:
                    visit(node.file[ref], f"{name}({i})", depth + 1)
            return
        if node.dtype.kind in "fiu" and node.size:
            out[name] = np.asarray(node[()]).T

    with h5py.File(path, "r") as f:
        visit(f, "", 0)
    return out


def _hdf5_file(path: Path) -> dict[str, np.ndarray]:
    """:func:`_hdf5_arrays`, its failures a DataError naming ``path``."""
    try:
        return _hdf5_arrays(path)
    except ImportError:
        raise DataError(path, "a MATLAB 7.3 (HDF5) file: reading it needs the h5py package (pip install h5py)") from None
    except MemoryError as e:  # too little memory is no fault of the file
        raise reading_memory_error(path, e) from None
    except Exception as e:  # noqa: BLE001 - h5py raises OSError, KeyError... for damaged files
        raise DataError(path, f"unreadable MATLAB 7.3 (HDF5) file ({type(e).__name__}: {e})") from None


def _is_hdf5(path: Path) -> bool:
    """An HDF5 file: its signature at 0, or at 512 after MATLAB 7.3's header."""
    try:
        with open(path, "rb") as f:
            head = f.read(520)
    except OSError:
        return False
    return b"\x89HDF\r\n\x1a\n" in (head[:8], head[512:520])


def stored_values(path: str | Path) -> int | None:
    """The values a ``.mat`` file's arrays hold, from its headers (scipy's ``whosmat``; the dataset shapes of a MATLAB
    7.3 file) without decoding them: a compressed file unpacks to many times its size (622 KB held 640 MB of
    samples). Arrays inside structs and cells count as one value; None where the headers cannot be read so (the
    reader then says what is wrong)."""
    import math

    try:
        if _is_hdf5(Path(path)):
            import h5py

            sizes: list[int] = []
            with h5py.File(path, "r") as f:
                f.visititems(lambda _name, node: sizes.append(node.size) if isinstance(node, h5py.Dataset) else None)
            return int(sum(sizes))
        from scipy.io import whosmat

        return int(sum(math.prod(shape) for _name, shape, _kind in whosmat(str(path))))
    except Exception:  # noqa: BLE001 - a damaged or foreign file: the reader names its problem
        return None


def _numeric_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        from scipy.io import loadmat
    except ImportError:  # a small device's edge scorer: numpy alone; h5py alone reads a 7.3 file (it was refused)
        if _is_hdf5(path):
            return _hdf5_file(path)
        raise DataError(path, "reading a .mat file needs the scipy package (pip install scipy; h5py for MATLAB 7.3 "
                              "files)") from None
    try:
        content = loadmat(str(path), simplify_cells=True)
    except NotImplementedError:  # version 7.3: an HDF5 file
        return _hdf5_file(path)
    except MemoryError as e:  # too little memory is no fault of the file
        raise reading_memory_error(path, e) from None
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError, TypeError, OSError... for damaged files
        if _is_hdf5(path):  # an HDF5 file written without MATLAB's header (h5py, another tool)
            return _hdf5_file(path)
        raise DataError(path, f"unreadable .mat file ({type(e).__name__}: {e})") from None
    out: dict[str, np.ndarray] = {}
    _flatten(content, "", out)  # less scipy's __header__, __version__, __globals__
    return out


def _is_time(v: np.ndarray) -> bool:
    """A strictly increasing vector of 16 or more values: a time axis (no recorded signal rises at every sample)."""
    v = np.asarray(v, np.float64)
    return v.size >= 16 and bool(np.isfinite(v).all()) and bool((np.diff(v) > 0).all())


def _last_part(name: str) -> str:
    return re.split(r"[.(]", name)[-1] if not name.endswith(")") else name


def number_order(keys: list[str]) -> list[str]:
    """``keys`` in their numbers' order where every one is one name followed by a number (``ch1`` ... ``ch16``,
    ``acc_2``, ``Channel 10``): listed by name they read ``ch1, ch10, ch11, ..., ch2``; else as given."""
    parts = [re.fullmatch(r"(.*?\D)(\d+)", k) for k in keys]
    if len(keys) < 2 or not all(parts) or len({m.group(1) for m in parts}) != 1 \
            or len({int(m.group(2)) for m in parts}) != len(keys):
        return list(keys)
    return [k for _, k in sorted(zip((int(m.group(2)) for m in parts), keys))]


def channel_names(keys: list[str]) -> list[str]:
    """The names of a file's channels, its vectors' ``keys``, less a first token holding digits that every key begins
    with (``X097_DE_time`` -> ``DE_time``: see the module's rules); the keys themselves where that leaves a name empty
    or two alike; none for one channel (nothing to put in order: a folder of files each holding one vector named
    after its file, ``data_000``, ``data_001``, was refused as lacking the others' columns)."""
    if len(keys) < 2:
        return []
    tokens = {m.group(1) if (m := _FILE_TOKEN.match(k)) else None for k in keys}
    if len(tokens) == 1 and None not in tokens:
        names = [k[len(next(iter(tokens))) + 1:] for k in keys]
        if all(names) and len(set(names)) == len(names):
            return names
    return list(keys)


def read_mat_recording(path: str | Path, sample_rate: float | None = None, fallback_rate: float | None = None,
                       names: list | None = None) -> tuple[np.ndarray, float]:
    """``(samples (T, C) float64, rate in Hz)`` of a ``.mat`` recording; DataError naming the file. ``sample_rate``:
    the file's rate (one it gives must agree); ``fallback_rate``: the rate of a file that gives none; ``names``, when
    given, gets the channels' names (:func:`channel_names`; none for a matrix's columns)."""
    path = Path(path)
    given = sample_rate if sample_rate is not None else fallback_rate
    arrays = {k: np.squeeze(v) for k, v in _numeric_arrays(path).items()}
    rates = {k: float(v) for k, v in arrays.items() if v.ndim == 0 and _RATE_NAME.fullmatch(_last_part(k))}
    distinct = {round(r, 6) for r in rates.values()}
    if len(distinct) > 1 and given is None:
        listed = ", ".join(f"{k} = {r:g}" for k, r in rates.items())
        raise DataError(path, f"the file gives different sample rates ({listed}): the recording's is unknown; "
                              + RATE_HINT)
    rate = next(iter(rates.values())) if len(distinct) == 1 else None
    steps = {k: float(v) for k, v in arrays.items() if v.ndim == 0 and _STEP_NAME.fullmatch(_last_part(k))}
    if not rates and len(steps) == 1 and 0 < (step := next(iter(steps.values()))) <= 60:
        rate = snap_rate(1.0 / step)
    vectors = {k: v for k, v in arrays.items() if v.ndim == 1 and v.size > 1}
    matrices = {k: (v if v.shape[0] >= v.shape[1] else v.T) for k, v in arrays.items() if v.ndim == 2}
    # a time vector saved beside the samples (t, time: DAQ software does) is not a channel: it had become the
    # recording, every window identical, every fault scored 0
    times = {k: v for k, v in vectors.items() if _is_time(v)}
    vectors = {k: v for k, v in vectors.items() if k not in times}
    longest = max((len(v) for v in vectors.values()), default=0)
    matrix = max(matrices.items(), key=lambda kv: kv[1].shape[0], default=None)
    if matrix is not None and matrix[1].shape[0] >= longest:
        data = np.asarray(matrix[1], dtype=np.float64)
        if data.shape[1] > 1 and _is_time(data[:, 0]):  # a time column first, as in a CSV
            times[f"{matrix[0]}(:, 1)"], data = data[:, 0], data[:, 1:]
        # vectors of its length: channels too (the matrix was read alone)
        if beside := number_order([k for k, v in vectors.items() if len(v) == len(data)]):
            data = np.column_stack([data, *(vectors[k] for k in beside)]).astype(np.float64)
            if names is not None:
                first = data.shape[1] - len(beside)
                names.extend([f"{matrix[0]}(:, {j + 1})" for j in range(first)] + beside)
    elif longest:
        keys = number_order([k for k, v in vectors.items() if len(v) == longest])
        data = np.stack([vectors[k] for k in keys], axis=1).astype(np.float64)
        if names is not None:
            names.extend(channel_names(keys))
    else:
        found = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(arrays.items())[:12]) or "no numeric arrays"
        found += f" and {len(arrays) - 12} more" if len(arrays) > 12 else ""
        raise DataError(path, f"no recording in the .mat file (numeric vectors or a matrix of samples; found {found})")
    if rate is None and (timed := [(k, t) for k, t in times.items() if len(t) == len(data)]):
        name, t = timed[0]
        step = np.diff(np.asarray(t, np.float64))
        if step.max() - step.min() > 0.01 * np.median(step):
            raise DataError(path, f"the time vector {name} is not evenly spaced ({step.min():.6g} to {step.max():.6g}): "
                                  "the sample rate is unknown; " + RATE_HINT)
        rate = snap_rate((1000.0 if re.search(r"(?i)(ms|msec|milli)", _last_part(name)) else 1.0)
                          / float(np.median(step)))
    if rate is not None:
        check_given_rate(path, rate, sample_rate, "the file", 0.01)
    rate = rate if rate is not None else given
    if rate is None or not np.isfinite(rate) or rate <= 0:
        raise DataError(path, "a .mat recording without its sample rate (no scalar named fs, sample_rate, dt, ...): "
                              + RATE_HINT)
    return data, float(rate)


def read_mat_vibration(path: str | Path, sample_rate: float | None = None,
                       channels: list[int] | tuple[int, ...] | None = None,
                       fallback_rate: float | None = None, names: list | None = None,
                       pick_names: list[str] | None = None) -> tuple[np.ndarray, float]:
    """A ``.mat`` recording as :func:`latentbridge.io.read_vibration_csv` returns a CSV's: ``(wave (C, T) float32,
    rate)``, ``channels`` picking some (0-based; out of range: DataError naming the file), or ``pick_names`` those
    of these names where it names each (:func:`~latentbridge.io.columns.by_name`); ``names`` gets the names of the
    channels returned (:func:`channel_names`)."""
    from latentbridge.io.columns import by_name

    data, rate = read_mat_recording(path, sample_rate, fallback_rate, names=(found := []))
    if pick_names and (picked := by_name(found, pick_names, units=True)) is not None:
        data, found = data[:, picked], list(pick_names)
    elif channels is not None:
        picked = pick_channels(path, channels, data.shape[1], "channel")
        data, found = data[:, picked], [found[c] for c in picked] if found else []
    if names is not None:
        names.extend(found)
    return np.ascontiguousarray(data.T, dtype=np.float32), rate
