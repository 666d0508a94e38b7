"""Shared helpers for the benchmark scripts (not part of the package).

Every performance figure in these benchmarks is a *ratio against a reference measured in the same
run*, with the candidates interleaved (round robin, order rotated every repetition) and the median
taken over repetitions, because the benchmark machine is shared and small.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
#: where ``write_results`` writes (``$LATENTBRIDGE_BENCH_RESULTS``: elsewhere than the repository's tracked results)
RESULTS_DIR = Path(os.environ.get("LATENTBRIDGE_BENCH_RESULTS") or BENCH_DIR / "results").absolute()
#: options naming folders or files: made absolute before a script reads them, since its commands run in the
#: repository (a relative --work wrote the data there, then the script looked for it where it was called)
PATH_OPTIONS = ("--work", "--keep", "--run-dir", "--data", "--out", "--reference")
for _i, _arg in enumerate(sys.argv[:-1]):
    if _arg in PATH_OPTIONS and not sys.argv[_i + 1].startswith("-"):
        sys.argv[_i + 1] = os.path.abspath(os.path.expanduser(sys.argv[_i + 1]))
for _i, _arg in enumerate(sys.argv):
    _opt, _eq, _value = _arg.partition("=")
    if _eq and _opt in PATH_OPTIONS and _value:
        sys.argv[_i] = f"{_opt}={os.path.abspath(os.path.expanduser(_value))}"
#: The code under test is this checkout's ``src/``: first on ``sys.path`` here and on ``PYTHONPATH`` for
#: every subprocess (``python -m latentbridge ...``), whatever copy of the package is installed.
SRC = REPO / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
#: Free Spoken Digit Dataset, relative to the repository (read-only; never copied into the repo).
FSDD_DIR = (REPO / ".." / "shared" / "data" / "fsdd").resolve()


def fsdd_recordings() -> Path | None:
    """The FSDD ``recordings`` folder, or None (with a message) when it is not there."""
    rec = FSDD_DIR / "recordings"
    if not rec.is_dir() or not any(rec.glob("*.wav")):
        print(f"note: FSDD not found at {rec} (expected ../shared/data/fsdd/recordings relative to the repo); "
              "skipping the FSDD part")
        return None
    return rec


def cli(*args: str) -> list[str]:
    """The command line of ``latentbridge ARGS`` run from this checkout (``python -m latentbridge``)."""
    return [sys.executable, "-m", "latentbridge", *args]


def code_version() -> dict:
    """The commit of the code under test and whether ``src/`` differs from it."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {"commit": git("rev-parse", "HEAD"), "src_modified": bool(git("status", "--porcelain", "--", "src"))}


#: taken when the script starts (a commit made while a long run is under way must not be credited with it)
CODE_AT_START = code_version()


def machine_info() -> dict:
    import torch

    info = {
        "python": sys.version.split()[0], "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": bool(torch.cuda.is_available()), "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    for mod in ("librosa", "onnxruntime", "lightning"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            pass
    return info


def interleaved(fns: dict[str, Callable[[], object]], reps: int, inner: int = 1,
                warmup: int = 1) -> dict[str, list[float]]:
    """Time each callable ``reps`` times, round robin with the order rotated every repetition.

    Each sample is the wall time of ``inner`` consecutive calls divided by ``inner`` (seconds).
    Returns {name: [sample, ...]} in repetition order (so ratios can be taken per repetition).
    """
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            fn = fns[n]
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            out[n].append((time.perf_counter() - t0) / inner)
    return out


def median(xs) -> float:
    return float(statistics.median(xs))


def per_rep_ratio(num: list[float], den: list[float]) -> float:
    """Median over repetitions of num[i] / den[i] (both measured in the same repetition)."""
    return median([a / b for a, b in zip(num, den)])


def write_results(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = {"benchmark": name, "command": "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}",
                                                                  *sys.argv[1:]]),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "code": CODE_AT_START,
            "machine": machine_info(), **data}
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return path


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def table(rows: list[dict], cols: list[str], fmt: dict[str, str] | None = None) -> str:
    """A GitHub-markdown table (also readable in a terminal)."""
    fmt = fmt or {}

    def cell(r, c):
        v = r.get(c, "")
        if v is None:
            return "–"
        if isinstance(v, float):
            return format(v, fmt.get(c, ".4g"))
        return str(v)

    cells = [[cell(r, c) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(x.ljust(w) for x, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def run_logged(cmd: list[str], log: Path, loads: list[float] | None = None) -> float:
    """Run a command (output to ``log``), return its wall time; raise with the log's tail on failure.

    With ``loads``, the 1-min load average is appended every 5 s while the command runs (the machine is
    shared: other processes show up there).
    """
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        while True:
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                if loads is not None:
                    loads.append(os.getloadavg()[0])
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return dt


def make_synth_machine(out_dir: Path, **kw) -> Path:
    """Generate the synthetic machine set (retrying a few times: the generator may be mid-edit)."""
    from latentbridge.data.synth.machine import synth_machine

    last = None
    for attempt in range(3):
        try:
            synth_machine(out_dir, overwrite=True, **kw)
            return out_dir
        except Exception as e:  # noqa: BLE001 - report and retry
            last = e
            print(f"synth_machine failed ({type(e).__name__}: {e}); retrying in 60 s", file=sys.stderr)
            time.sleep(60)
    raise RuntimeError(f"synth_machine keeps failing: {last}")
