"""Soak test of live listening: `latentbridge anomaly listen` on a virtual microphone for N minutes.

A private PulseAudio daemon (its own runtime folder, so that test suites starting and killing the
per-user daemon on the same machine cannot touch it) gets a null sink; its monitor is the input
that ``anomaly listen`` records from (``PULSE_SOURCE``), and ``paplay`` plays a synthetic machine
recording (``latentbridge.data.synth.machine.synth_machine``, 60 s, normal) into the sink in a loop
for the whole run. ``listen`` runs as its own process (``python -m latentbridge anomaly listen MODEL
--duration MINUTES*60 --events events.csv``) with the repository's ``src`` first on PYTHONPATH.

Measured:

* **windows scored** (rows of the events CSV; checked against the summary line), **overflows** (the
  summary line: PortAudio input overflows + blocks dropped because the scorer fell behind), and
  **lost windows** = expected − scored, where expected = ``floor((D·sr − window) / hop) + 1`` for the
  requested duration D. A dropped block of ``blocksize`` frames shortens the audio the scorer sees,
  so up to ``ceil(overflows · blocksize / hop)`` lost windows are *accounted for* by overflows; the
  rest are *unaccounted*. The window starts are also checked to be exactly ``k · hop`` (no gap, no
  repeat).
* **resident memory** of the listen process: ``VmRSS`` from ``/proc/PID/status`` every
  ``--rss-every`` seconds. "start" is the first sample taken after the first window was logged (the
  model is loaded and has scored once), "end" the last sample taken before the last window was
  logged (samples during shutdown, when memory is being released, are left out);
  growth = (end − start) / start. Also the peak (over all samples) and a least-squares slope.
* **per-window latency**: the time from the arrival of the window's last sample to its line being
  printed. The events CSV logs ``wall_time`` (ms resolution, taken right after the line is printed)
  and ``end_s`` (position in the received audio). The last sample of a window arrives with the block
  that holds it: block ``ceil(end_sample / blocksize)``, nominally at ``T0 + that · blocksize / sr`` on
  the stream clock that started at ``T0``. ``T0`` is not logged; it is set so that the fastest window
  took exactly the scoring time of one window measured here beforehand (median of 30
  ``Detector.score_windows`` calls on one thread, the least any window can take). The audio clock
  may run at a slightly different rate from the wall clock (PulseAudio's null sink and its
  resampling): (wall − nominal arrival) then drifts linearly, which is not latency, so for runs of
  three minutes or more ``T0`` is a line fitted to the lower edge of those points (minima of each
  minute; its slope is reported as the clock rate difference in ppm) rather than a constant. So p50/p99 are exact relative to each other and their absolute
  level rests on the floor assumption; they include PulseAudio's delivery jitter (a block delivered
  late or in a burst counts as latency). A scorer that falls behind shows up as a positive latency
  trend (ms per minute, least squares over the run).

Goal printed with the figures: no crash (exit code 0 and the summary line), every window either
scored or counted as an overflow (no unaccounted lost window), memory growth < 5 %.

Results go to ``benchmarks/results/bench_soak.json`` under ``runs["<minutes>min"]`` (a run replaces
the entry of the same duration and keeps the others), with the raw samples, the exact commands,
versions and load averages.

    python benchmarks/bench_soak.py [--minutes 10] [--model DIR] [--epochs 2] [--rss-every 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS_DIR, make_synth_machine, write_results  # noqa: E402

GOAL_GROWTH_PCT = 5.0
SINK = "lb_soak"


# ------------------------------------------------------------------------------ helpers


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def version_of(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" (src/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


class PrivatePulse:
    """A PulseAudio daemon of our own (runtime and state folders under ``root``) with a null sink."""

    def __init__(self, root: Path):
        self.root = root
        rt, state = root / "pulse_rt", root / "pulse_state"
        rt.mkdir(parents=True, exist_ok=True)
        state.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PULSE_RUNTIME_PATH": str(rt), "PULSE_STATE_PATH": str(state),
                    "PULSE_SERVER": f"unix:{rt / 'native'}", "PULSE_SINK": SINK,
                    "PULSE_SOURCE": f"{SINK}.monitor"}
        self.pid: int | None = None

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, env=self.env, timeout=timeout, check=False)

    def start(self) -> None:
        for tool, pkg in (("pulseaudio", "pulseaudio"), ("pactl", "pulseaudio-utils"), ("paplay", "pulseaudio-utils")):
            if shutil.which(tool) is None:
                raise SystemExit(f"the soak needs `{tool}` (apt-get install {pkg})")
        r = self._run("pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "--disallow-exit")
        if r.returncode != 0:
            raise SystemExit(f"pulseaudio could not start: {(r.stderr or r.stdout).strip()}")
        pidfile = self.root / "pulse_rt" / "pid"
        deadline = time.monotonic() + 15
        while self._run("pactl", "info", timeout=5).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("pulseaudio started but `pactl info` cannot reach it")
            time.sleep(0.2)
        try:
            self.pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.pid = None
        r = self._run("pactl", "load-module", "module-null-sink", f"sink_name={SINK}")
        if r.returncode != 0:
            self.stop()
            raise SystemExit(f"cannot load module-null-sink: {r.stderr.strip()}")

    def stop(self) -> None:
        self._run("pulseaudio", "--kill")
        if self.pid is not None:  # only our own daemon, by its pid
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{self.pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{self.pid}").exists():
                os.kill(self.pid, 9)


class Player(threading.Thread):
    """``paplay`` the recording into the sink again and again until stopped."""

    def __init__(self, wav: Path, env: dict):
        super().__init__(daemon=True)
        self.wav, self.env = wav, env
        self.stop_event = threading.Event()
        self.plays = 0
        self.failures: list[str] = []
        self.proc: subprocess.Popen | None = None

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.proc = subprocess.Popen(["paplay", f"--device={SINK}", str(self.wav)], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            _, err = self.proc.communicate()
            if self.proc.returncode != 0 and not self.stop_event.is_set():
                self.failures.append((err or "").strip() or f"exit {self.proc.returncode}")
                time.sleep(0.5)
            else:
                self.plays += 1

    def stop(self) -> None:
        self.stop_event.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        self.join(timeout=10)


def fit_model(work: Path, epochs: int) -> Path:
    from latentbridge.config import load_config
    from latentbridge.tasks import anomaly

    synth = make_synth_machine(work / "synth_train", seed=0, duration_s=4.0, n_train=8, n_test_normal=0,
                               n_test_anomalous=0)
    cfg = load_config(str(REPO / "configs" / "anomaly_vae.yaml"), [
        f"data.train_dir={synth / 'train' / 'normal'}", f"data.cache_dir={work / 'cache'}",
        f"train.max_epochs={epochs}", "train.progress_bar=false", "train.accelerator=cpu"])
    t0 = time.time()
    anomaly.fit(cfg, work / "model", force=True)
    print(f"fitted configs/anomaly_vae.yaml for {epochs} epochs in {time.time() - t0:.1f} s -> {work / 'model'}")
    return work / "model"


def one_window_score_ms(det, reps: int = 30) -> float:
    """Median wall time of ``Detector.score_windows`` on one window, one torch thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(0)
        x = (0.05 * rng.standard_normal((1, det.spec.window_samples))).astype(np.float32)
        for _ in range(5):
            det.score_windows(x)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            det.score_windows(x)
            ts.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(ts) * 1e3)


def pct(xs, q) -> float | None:
    return float(np.percentile(xs, q)) if len(xs) else None


# ------------------------------------------------------------------------------ analysis


def analyse(rows: list[dict], rss: list[tuple[float, int]], summary: dict | None, *, duration_s: float, sr: int,
            window: int, hop: int, blocksize: int, floor_ms: float) -> dict:
    n = len(rows)
    expected = (int(round(duration_s * sr)) - window) // hop + 1
    overflows = summary["overflows"] if summary else (rows[-1]["overflows"] if rows else 0)
    lost = expected - n
    by_overflow = math.ceil(overflows * blocksize / hop)
    unaccounted = max(0, lost - by_overflow)
    starts = np.array([r["start_s"] for r in rows])
    contiguous = bool(n == 0 or np.array_equal(np.round(starts * sr).astype(np.int64),
                                               np.arange(n, dtype=np.int64) * hop))

    # latency: wall time of the line minus the nominal arrival of the block holding the window's last sample
    lat: dict = {}
    if n:
        wall = np.array([r["wall"] for r in rows])
        end_sample = np.round(np.array([r["end_s"] for r in rows]) * sr).astype(np.int64)
        arrival = np.ceil(end_sample / blocksize) * blocksize / sr
        d = wall - arrival  # = T0 + latency, on the wall clock
        base, rate = lower_envelope(arrival, d)
        latency_ms = (d - base) * 1e3 + floor_ms
        trend = float(np.polyfit(arrival, latency_ms, 1)[0] * 60) if n > 2 else None  # ms per minute of audio
        lat = {"p50_ms": pct(latency_ms, 50), "p90_ms": pct(latency_ms, 90), "p99_ms": pct(latency_ms, 99),
               "max_ms": float(latency_ms.max()), "floor_ms": floor_ms, "trend_ms_per_min": trend,
               "clock_rate_ppm": rate * 1e6, "samples_ms": latency_ms.round(1).tolist()}

    mem: dict = {}
    if rss:  # while listening: from the first window logged to the last (not start-up, not shutdown)
        first_wall, last_wall = (rows[0]["wall"], rows[-1]["wall"]) if n else (None, None)
        after = [(t, kb) for t, kb in rss if first_wall is None or first_wall <= t <= last_wall]
        if after:
            t = np.array([a for a, _ in after])
            kb = np.array([b for _, b in after], dtype=np.float64)
            mem = {"start_mb": kb[0] / 1024, "end_mb": kb[-1] / 1024, "peak_mb": max(b for _, b in rss) / 1024,
                   "growth_pct": float((kb[-1] - kb[0]) / kb[0] * 100),
                   "slope_mb_per_hour": float(np.polyfit(t - t[0], kb / 1024, 1)[0] * 3600) if len(t) > 2 else None,
                   "n_samples_while_listening": len(after)}
    return {"expected_windows": expected, "windows_scored": n, "overflows": overflows, "lost_windows": lost,
            "lost_accounted_by_overflows": min(max(lost, 0), by_overflow), "lost_unaccounted": unaccounted,
            "starts_contiguous": contiguous, "latency": lat, "memory": mem}


def lower_envelope(x: np.ndarray, d: np.ndarray, segment_s: float = 60.0) -> tuple[np.ndarray, float]:
    """A line under every point of ``d(x)`` that follows its lower edge: least squares through the
    minima of consecutive ``segment_s``-long runs of points, then lowered until no point lies below it.

    ``d`` = wall time minus nominal arrival drifts linearly when the audio clock runs at another rate
    than the wall clock (the stream then delivers its samples a little faster or slower than
    nominal); that drift is not latency, so latency is measured from this line rather than from one
    global minimum. The delivery through PulseAudio has a sawtooth of one block (64 ms) with a period
    of 40-60 s, so segments are a minute long, and runs shorter than three minutes use a constant
    (the global minimum). Returns (the line at each ``x``, its slope = clock rate difference).
    """
    segments = int((x[-1] - x[0]) // segment_s) if len(x) else 0
    if segments < 3:
        return np.full_like(d, d.min()), 0.0
    parts = np.array_split(np.arange(len(x)), segments)
    mins = [p[np.argmin(d[p])] for p in parts]
    slope, icept = np.polyfit(x[mins], d[mins], 1)
    line = icept + slope * x
    return line + (d - line).min(), float(slope)


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append({"wall": datetime.fromisoformat(r["wall_time"]).timestamp(), "wall_time": r["wall_time"],
                         "start_s": float(r["start_s"]), "end_s": float(r["end_s"]), "score": float(r["score"]),
                         "is_anomaly": int(r["is_anomaly"]), "overflows": int(r["overflows"])})
    return rows


SUMMARY_RE = re.compile(r"listened ([\d.]+) s: (\d+) windows, (\d+) anomalies, (\d+) overflows")


# ------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the soak (audio minutes)")
    ap.add_argument("--model", help="an anomaly model folder to listen with (default: fit a small one here)")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs when a model is fitted here")
    ap.add_argument("--blocksize", type=int, default=1024, help="frames per audio block (listen --blocksize)")
    ap.add_argument("--rss-every", type=float, default=5.0, help="seconds between memory samples")
    ap.add_argument("--keep", help="keep the work folder (model, audio, events, logs) here")
    args = ap.parse_args(argv)
    if args.minutes <= 0:
        ap.error("--minutes must be positive")
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        raise SystemExit(f"the soak needs sounddevice with PortAudio (libportaudio2): {exc}") from None
    from latentbridge.tasks.anomaly import Detector

    duration_s = args.minutes * 60
    tmp = tempfile.mkdtemp(prefix="lb_soak_")  # short path: PulseAudio's socket lives below it
    work = Path(args.keep) if args.keep else Path(tmp)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model) if args.model else fit_model(work, args.epochs)
    det = Detector.load(model_dir)
    sr, window, hop = det.sample_rate, det.spec.window_samples, det.spec.hop_samples
    floor_ms = one_window_score_ms(det)
    print(f"model {model_dir}: {sr} Hz, window {window / sr:g} s, hop {hop / sr:g} s; one window scores in "
          f"{floor_ms:.2f} ms (median, 1 thread)")

    synth = make_synth_machine(work / "synth_play", seed=1, sample_rate=sr, duration_s=60.0, n_train=1,
                               n_test_normal=0, n_test_anomalous=0)
    wav = next((synth / "train" / "normal").glob("*.wav"))
    events = work / "events.csv"
    events.unlink(missing_ok=True)
    listen_cmd = [sys.executable, "-m", "latentbridge", "anomaly", "listen", str(model_dir), "--duration",
                  f"{duration_s:g}", "--events", str(events), "--blocksize", str(args.blocksize)]

    pulse = PrivatePulse(Path(tmp))
    pulse.start()
    env = {**pulse.env, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH"))
                                                      if p)}
    player = Player(wav, pulse.env)
    rss: list[tuple[float, int]] = []
    loads: list[tuple[float, list[float]]] = []
    load_start = loadavg()
    t_launch = time.time()
    timed_out = False
    try:
        player.start()
        time.sleep(0.5)  # the sink is playing before the input opens
        with open(work / "listen_stdout.txt", "w") as out, open(work / "listen_stderr.txt", "w") as err:
            proc = subprocess.Popen(listen_cmd, stdout=out, stderr=err, env=env)
            print(f"listening for {args.minutes:g} min (pid {proc.pid}): {' '.join(listen_cmd)}")
            deadline = time.monotonic() + duration_s + 180
            next_report = time.monotonic() + 60
            while proc.poll() is None:
                kb = rss_kb(proc.pid)
                if kb is not None:
                    rss.append((time.time(), kb))
                loads.append((time.time(), loadavg()))
                if time.monotonic() > next_report:
                    n_rows = max(0, len(events.read_text().splitlines()) - 1) if events.exists() else 0
                    print(f"  {(time.time() - t_launch) / 60:5.1f} min: {n_rows} windows, RSS {kb / 1024 if kb else 0:.1f} MB,"
                          f" load {loads[-1][1][0] if loads[-1][1] else float('nan'):.2f}", flush=True)
                    next_report += 60
                if time.monotonic() > deadline:
                    timed_out = True
                    proc.terminate()
                    break
                end = time.monotonic() + args.rss_every
                while time.monotonic() < end and proc.poll() is None:
                    time.sleep(0.1)
            try:
                returncode = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                returncode = proc.wait()
    finally:
        player.stop()
        pulse.stop()
    wall_s = time.time() - t_launch

    stdout = (work / "listen_stdout.txt").read_text()
    stderr = (work / "listen_stderr.txt").read_text()
    m = SUMMARY_RE.search(stdout)
    summary = ({"listened_s": float(m[1]), "n_windows": int(m[2]), "n_anomalies": int(m[3]), "overflows": int(m[4])}
               if m else None)
    rows = read_events(events)
    res = analyse(rows, rss, summary, duration_s=duration_s, sr=sr, window=window, hop=hop,
                  blocksize=args.blocksize, floor_ms=floor_ms)
    crashed = returncode != 0 or summary is None or timed_out
    summary_matches = bool(summary and summary["n_windows"] == len(rows))
    mem, lat = res["memory"], res["latency"]
    goal = {"no_crash": not crashed, "every_window_scored_or_overflow": res["lost_unaccounted"] == 0
            and res["starts_contiguous"], "memory_growth_below_5pct": bool(mem and mem["growth_pct"] < GOAL_GROWTH_PCT)}

    print(f"\n== soak: {args.minutes:g} min of audio, {wall_s:.0f} s wall, exit code {returncode}"
          f"{' (timed out)' if timed_out else ''}")
    print(f"windows: {res['windows_scored']} scored of {res['expected_windows']} expected, {res['overflows']} overflows, "
          f"{res['lost_windows']} lost ({res['lost_unaccounted']} not accounted for by overflows); starts contiguous: "
          f"{res['starts_contiguous']}; summary line {'agrees' if summary_matches else 'DISAGREES'} with the events log")
    if mem:
        print(f"memory (VmRSS): {mem['start_mb']:.1f} MB after the first window -> {mem['end_mb']:.1f} MB at the last "
              f"({mem['growth_pct']:+.2f} %), peak {mem['peak_mb']:.1f} MB, slope "
              + (f"{mem['slope_mb_per_hour']:+.2f} MB/h" if mem['slope_mb_per_hour'] is not None
                 else "– (too few samples)")
              + f" ({mem['n_samples_while_listening']} samples every {args.rss_every:g} s)")
    if lat:
        print(f"latency (last sample arrived -> line printed): p50 {lat['p50_ms']:.0f} ms, p90 {lat['p90_ms']:.0f} ms, "
              f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms (floor = one-window scoring {floor_ms:.1f} ms); "
              f"trend {lat['trend_ms_per_min']:+.2f} ms per minute; audio clock vs wall clock "
              f"{lat['clock_rate_ppm']:+.0f} ppm")
    la = [v[0] for _, v in loads if v]
    print(f"load average (1 min) during the run: mean {np.mean(la):.2f}, max {np.max(la):.2f}" if la else "")
    print(f"goal: no crash: {'MET' if goal['no_crash'] else 'NOT MET'}; every window scored or counted as an overflow: "
          f"{'MET' if goal['every_window_scored_or_overflow'] else 'NOT MET'}; memory growth < {GOAL_GROWTH_PCT:g} %: "
          f"{'MET' if goal['memory_growth_below_5pct'] else 'NOT MET'}")
    if crashed and stderr.strip():
        print("listen stderr (last lines):\n" + "\n".join(stderr.strip().splitlines()[-15:]))

    run = {
        "command": "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "listen_command": " ".join(listen_cmd), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code": git_commit(), "minutes": args.minutes, "model": str(model_dir), "model_fitted_here": not args.model,
        "listen_threads": os.environ.get("OMP_NUM_THREADS") or f"CLI default (cores - 1 = {max(1, (os.cpu_count() or 2) - 1)})",
        "sample_rate": sr, "window_samples": window, "hop_samples": hop, "blocksize": args.blocksize,
        "played": f"{wav.name}: synth_machine(seed=1, duration_s=60) normal recording, paplay in a loop into a "
                  f"private PulseAudio null sink",
        "paplay_plays": player.plays, "paplay_failures": player.failures,
        "launch_unix": t_launch, "exit_code": returncode, "timed_out": timed_out, "wall_s": round(wall_s, 1), "summary_line": summary,
        "summary_matches_events": summary_matches, "listen_stderr_tail": stderr.strip().splitlines()[-15:],
        **res, "goal": goal,
        "versions": {"pulseaudio": version_of(["pulseaudio", "--version"]),
                     "sounddevice": __import__("sounddevice").__version__,
                     "portaudio": __import__("sounddevice").get_portaudio_version()[1]},
        "loadavg_start": load_start, "loadavg_end": loadavg(),
        "loadavg_samples": [[round(t - t_launch, 1), v] for t, v in loads],
        "rss_samples_kb": [[round(t - t_launch, 1), kb] for t, kb in rss],
        "events": [[r["wall_time"], r["start_s"], r["end_s"], r["score"], r["is_anomaly"], r["overflows"]]
                   for r in rows],
    }
    previous = RESULTS_DIR / "bench_soak.json"
    runs = {}
    if previous.exists():
        try:
            runs = json.loads(previous.read_text()).get("runs", {})
        except (OSError, ValueError):
            runs = {}
    runs[f"{args.minutes:g}min"] = run
    write_results("bench_soak", {"goal_memory_growth_pct": GOAL_GROWTH_PCT, "runs": runs})
    shutil.rmtree(tmp, ignore_errors=True)  # with --keep, only the PulseAudio folders are here
    return 0 if all(goal.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
