"""Low-rate vibration sensors: the survey's time rule for the STFT against the finer one.

At low rates the survey's time rule (frames of about 64 ms for long recordings) leaves a handful of frequency bins
(n_fft 8 at 100 Hz: 5 bins 12.5 Hz apart). Up to about 500 Hz (17 bins) the survey chooses settings that resolve
stationary vibration finely instead (frames of up to 1024 samples, 8 of them to a window); above, up to 64 bins, it
names them. Three simulated accelerometer sets, each fitted and scored through the CLI with the survey's settings and
with the others (the time rule's, given with -o where the finer ones were chosen; the named ones where not):

* ``modal_100hz``: 120-s recordings at 100 Hz of ambient vibration through two structural modes (2.1 and 3.3 Hz,
  Q 8); the fault lowers them by 7 % and 3 % (a stiffness loss); 60 training, 40 + 40 test recordings.
* ``modal_100hz_jitter``: the same with each recording's modes moved by up to ±1 % and its level by ±6 dB.
* ``gearbox_1khz``: 10-s recordings at 1 kHz: a shaft at 24-26 Hz, a gear mesh at 9x with sidebands at ±1 and ±2
  shaft orders; the fault doubles the sidebands; level ±6 dB.

    python benchmarks/low_rate_settings.py [--work DIR]

Results: ``benchmarks/results/low_rate_settings.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402


def _write(path: Path, t: np.ndarray, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.c_[t, x], delimiter=",", header="time_s,acc", comments="", fmt="%.5f")


def modal(root: Path, seed: int, jitter: bool) -> None:
    from scipy.signal import iirpeak, lfilter

    rng = np.random.default_rng(seed)
    sr = 100
    t = np.arange(120 * sr) / sr

    def one(path, fault):
        e = rng.standard_normal(t.size)
        x = np.zeros_like(t)
        for f0, shift in ((2.1, 0.93), (3.3, 0.97)):
            f = f0 * (shift if fault else 1.0) * (rng.uniform(0.99, 1.01) if jitter else 1.0)
            b, a = iirpeak(f, 8, fs=sr)
            x += lfilter(b, a, e)
        if jitter:
            x *= 10 ** (rng.uniform(-6, 6) / 20)
        _write(path, t, x + 0.05 * rng.standard_normal(t.size))

    _sets(root, one)


def gearbox(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sr = 1000
    t = np.arange(10 * sr) / sr

    def one(path, fault):
        fs = rng.uniform(24.0, 26.0)
        fm, sb = 9 * fs, 0.12 if fault else 0.06
        x = np.sin(2 * np.pi * fs * t) + 0.5 * np.sin(2 * np.pi * fm * t + rng.uniform(0, 6))
        for k in (1, 2):
            for sign in (1, -1):
                x += sb / k * np.sin(2 * np.pi * (fm + sign * k * fs) * t + rng.uniform(0, 6))
        _write(path, t, (x + 0.3 * rng.standard_normal(t.size)) * 10 ** (rng.uniform(-6, 6) / 20))

    _sets(root, one)


def _sets(root: Path, one) -> None:
    for i in range(60):
        one(root / "train" / f"r{i:02d}.csv", False)
    for i in range(40):
        one(root / "test" / "normal" / f"n{i:02d}.csv", False)
        one(root / "test" / "anomalous" / f"a{i:02d}.csv", True)


def run(data: Path, out: Path, overrides: list[str], scores: tuple[str, ...] = ()) -> dict:
    """Fit on ``data/train`` with ``overrides``, score ``data/test``; ``scores``: other scores of the same model,
    each scored too (``auc_SCORE``, ``pauc_SCORE``)."""
    from latentbridge.cli import main

    extra = [x for o in overrides for x in ("-o", o)]
    t0 = time.time()
    assert main(["anomaly", "fit", str(data / "train"), "--out", str(out / "m"), "--force", *extra]) == 0
    other = {}
    for score in scores:
        assert main(["anomaly", "score", str(out / "m"), str(data / "test"), "--labels", "auto", "--score", score,
                     "--out", str(out / f"s_{score}"), "--force"]) == 0
        m = json.loads((out / f"s_{score}" / "metrics.json").read_text())
        other.update({f"auc_{score}": round(m["auc"], 4), f"pauc_{score}": round(m["pauc"], 4)})
    assert main(["anomaly", "score", str(out / "m"), str(data / "test"), "--labels", "auto", "--out", str(out / "s"),
                 "--force"]) == 0
    m = json.loads((out / "s" / "metrics.json").read_text())
    info = json.loads((out / "m" / "config.json").read_text())
    chosen = {r["key"]: r for r in info["data"].get("settings_chosen", [])}
    f = info["config"]["features"]
    return {"auc": round(m["auc"], 4), "pauc": round(m["pauc"], 4), **other, "n_fft": f["n_fft"], "n_mels": f["n_mels"],
            "window_s": info["config"]["audio"]["window_s"], "seconds": round(time.time() - t0, 1),
            "n_fft_reason": (chosen.get("features.n_fft") or {}).get("reason", "")}


def time_rule(reason: str) -> list[str]:
    """The overrides of the survey's time rule (frames of 64 ms, 2-s windows) from a choice that replaced it
    ("... the time rule (80 ms at 100 Hz ...")."""
    ms, rate = re.search(r"the time rule \((\d+) ms at (\d+) Hz", reason).groups()
    n_fft = int(round(int(ms) * int(rate) / 1000))
    return [f"features.n_fft={n_fft}", f"features.hop_length={n_fft // 2}", "audio.window_s=2.0", "audio.hop_s=1.0"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="lb_lowrate_"))
    sets = {"modal_100hz": lambda r: modal(r, 0, False), "modal_100hz_jitter": lambda r: modal(r, 1, True),
            "gearbox_1khz": lambda r: gearbox(r, 2)}
    rows = []
    for name, make in sets.items():
        data = work / name / "data"
        if not (data / "train").is_dir():
            make(data)
        default = run(data, work / name / "default", [])
        hint = re.findall(r"-o (\S+=\S+)", default["n_fft_reason"])
        rows.append({"set": name, "settings": "survey's default", **default})
        if hint:  # the finer STFT named in the choice's line
            rows.append({"set": name, "settings": "the hint: " + " ".join(hint), **run(data, work / name / "hint", hint)})
        elif "the time rule" in default["n_fft_reason"]:  # the finer STFT chosen: the time rule's own for reference
            rule = time_rule(default["n_fft_reason"])
            rows.append({"set": name, "settings": "the time rule: " + " ".join(rule),
                         **run(data, work / name / "time_rule", rule)})
        print(table(rows[-2:], ["set", "settings", "n_fft", "n_mels", "window_s", "auc", "pauc"],
                    {"auc": ".3f", "pauc": ".3f"}), flush=True)
    print(table(rows, ["set", "settings", "n_fft", "n_mels", "window_s", "auc", "pauc"], {"auc": ".3f", "pauc": ".3f"}))
    write_results("low_rate_settings", {"work": str(work), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
