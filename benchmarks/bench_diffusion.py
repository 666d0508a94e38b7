"""Class-conditional DDPM on MNIST: samplers, guidance, and architectures, all judged alike.

Parts (``--parts``, default all; a part reuses the run folders of earlier ones under ``--work``):

``train``
    Trains the default preset (``configs/ddpm_mnist.yaml``: our residual U-Net) with
    ``latentbridge train``, and the reference design's two-block U-Net
    (``configs/ddpm_mnist_seed.yaml``) and diffusers' ``UNet2DModel`` at our widths
    (``configs/ddpm_mnist_diffusers.yaml``) for the *same CPU time*: the CPU seconds of one
    training step of each architecture are measured interleaved (1 thread, median of
    ``--calib-reps``) and each gets ``ours' epochs x ours' step cost / its step cost`` epochs (its
    own cosine schedule over them). The trainings run as separate processes (``--jobs`` at a
    time, 1 thread each); wall time, the child's CPU time and the load average are recorded.

``samplers``
    Our model, ``--n-samples`` samples (classes in turn, the same seed) for every row: DDPM 1000
    steps, DDIM 100 / 50 / 20 / 10, DPM-Solver++ 20 / 10, at the preset's guidance. Per row: the
    Fréchet distance to the 2,000 test images in the MNIST classifier's feature space, class
    accuracy under that classifier, k-NN precision / recall (k = 3), and the sampling time per
    1,000 samples on one thread (wall and process CPU; speed-ups are ratios to DDPM-1000 measured
    in the same run). ``fd_real_floor``: as many real training images against the same test
    images.

``guidance``
    Guidance 0 / 1 / 2 / 4 at the fastest sampler whose FD is within 10 % of the best row's.

``arch``
    The three architectures at that sampler and the preset's guidance.

The results file keeps the figures of parts not run this time from the previous results file
(``kept_from_earlier_run`` names their date, code and run folder); the fast sampler is chosen from
the ``samplers`` rows, run now or kept.

Usage (from the repository root)::

    python benchmarks/bench_diffusion.py                          # everything (hours on a shared 2-core VM)
    python benchmarks/bench_diffusion.py --parts samplers,guidance --work /tmp/ddpm_bench

Data: ``../shared/data/mnist``. Without the 60,000 training images (as here) the code uses the
seeded 8,000 / 2,000 split of the 10,000 official test images: every figure is on that offline
split. The judge is the cached MNIST classifier (``latentbridge classifier train mnist``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, table, write_results  # noqa: E402

NAME = "bench_diffusion"
MNIST_ROOT = str((REPO / ".." / "shared" / "data" / "mnist").resolve())
PRESETS = {"ours": "configs/ddpm_mnist.yaml", "seed": "configs/ddpm_mnist_seed.yaml",
           "diffusers": "configs/ddpm_mnist_diffusers.yaml"}
SAMPLERS = [("ddpm", 1000), ("ddim", 100), ("ddim", 50), ("ddim", 20), ("ddim", 10), ("dpm", 20), ("dpm", 10)]
GUIDANCE = [0.0, 1.0, 2.0, 4.0]


def _cfg(name: str, extra: list[str]):
    from latentbridge.config import load_config

    return load_config(REPO / PRESETS[name], [f"data.root={MNIST_ROOT}", "train.progress_bar=false", *extra])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def step_cpu_seconds(cfg, reps: int, batch: int) -> float:
    """Median process CPU seconds of one training step (forward, backward, AdamW) at ``batch``."""
    import torch

    from latentbridge.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, **cfg.model_data(10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = {"x": torch.rand(batch, 1, 28, 28), "y": torch.arange(batch) % 10}
    out = []
    for r in range(reps + 1):
        t0 = time.process_time()
        loss = model.loss(x)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if r:
            out.append(time.process_time() - t0)
    return float(np.median(out))


def _train_command(name: str, out: Path, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "latentbridge", "train", "--config", PRESETS[name], "--out", str(out), "--force"]
    for o in [f"data.root={MNIST_ROOT}", "train.progress_bar=false", *extra]:
        cmd += ["-o", o]
    return cmd


def train_part(work: Path, args) -> dict:
    """Calibrate the CPU cost of a training step per architecture, then train the three presets
    (concurrently: ``--jobs``), each as ``latentbridge train`` in its own process; CPU seconds
    from the child's resource usage."""
    import subprocess

    cfgs = {k: _cfg(k, args.override) for k in PRESETS}
    batch = cfgs["ours"].train.batch_size
    costs = {k: [] for k in PRESETS}
    for _ in range(args.calib_reps):  # interleaved
        for k in PRESETS:
            costs[k].append(step_cpu_seconds(cfgs[k], 5, batch))
    step_cpu = {k: float(np.median(v)) for k, v in costs.items()}
    print("CPU s per training step:", {k: round(v, 3) for k, v in step_cpu.items()}, flush=True)
    epochs = {k: cfgs["ours"].train.max_epochs if k == "ours" else
              max(1, int(round(cfgs["ours"].train.max_epochs * step_cpu["ours"] / step_cpu[k]))) for k in PRESETS}
    pending = list(PRESETS)
    running: dict[int, tuple[str, subprocess.Popen, float, list]] = {}
    res = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            cmd = _train_command(name, work / name, [*args.override, f"train.max_epochs={epochs[name]}"])
            print("$ " + " ".join(cmd[1:]), flush=True)
            log = open(work / f"{name}.log", "w")
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[proc.pid] = (name, proc, time.time(), _load())
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        name, proc, t0, load0 = running.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"training {name} failed: see {work / (name + '.log')}")
        res[name] = {**run_record(work / name), "wall_s": round(time.time() - t0, 1),
                     "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "load_before": load0,
                     "load_after": _load(), "step_cpu_s": round(step_cpu[name], 4)}
        print(f"trained {name}: {epochs[name]} epochs, {res[name]['wall_s']:.0f} s wall, "
              f"{res[name]['cpu_s']:.0f} s CPU", flush=True)
    return {"step_cpu_s": step_cpu, "runs": res}


def run_record(run: Path) -> dict:
    """What a run folder says of its training: epochs, seconds, parameters, the monitor's history."""
    import json

    from latentbridge.models.hub import load_model
    from latentbridge.tasks.diffusion import read_epochs

    info = json.loads((run / "config.json").read_text())
    history = read_epochs(run / "logs" / "epochs.csv")
    last = [r for r in history if r.get("fd") is not None][-1:] or [{}]
    return {"run": str(run), "epochs": info["training"]["epochs"], "train_seconds_wall": info["training"]["seconds"],
            "params": sum(p.numel() for p in load_model(run).model.parameters()),
            "final_fd_monitor": last[0].get("fd"), "final_class_accuracy_monitor": last[0].get("class_accuracy"),
            "history": history}


class Bench:
    """One model folder, the judge, the reference features and the real floor, computed once."""

    def __init__(self, run: Path, n: int, judge=None):
        import torch

        from latentbridge.data.images import load_image_data
        from latentbridge.metrics.generative import frechet_distance, precision_recall
        from latentbridge.models.hub import load_model
        from latentbridge.tasks.generate import make_judge

        torch.set_num_threads(1)
        saved = load_model(run)
        self.model, self.cfg, self.n = saved.model, saved.workflow, n
        data = load_image_data(self.cfg.data, self.cfg.train.seed)
        self.judge = judge or make_judge((1, 28, 28), MNIST_ROOT)
        self.ref = self.judge.features(data.test.floats())
        rng = np.random.default_rng(self.cfg.train.seed + 11)
        real_set = data.train.subset(np.sort(rng.choice(len(data.train), size=n, replace=False)))
        real = real_set.floats()
        f_real = self.judge.features(real)
        pr = precision_recall(self.ref, f_real, 3)
        self.floor = {"fd_real_floor": frechet_distance(f_real, self.ref), "precision_real": pr["precision"],
                      "recall_real": pr["recall"],
                      "class_accuracy_real": float((self.judge.predict(real) == real_set.labels).mean())}
        self.split = data.info["split"]

    def row(self, scheduler: str, steps: int, guidance: float, seed: int = 0) -> dict:
        import torch

        from latentbridge.metrics.classification import coherence
        from latentbridge.metrics.generative import frechet_distance, precision_recall

        labels = torch.arange(self.n) % 10
        load0, t0, c0 = _load(), time.perf_counter(), time.process_time()
        x = self.model.generate(self.n, y=labels, guidance=guidance, scheduler=scheduler, steps=steps,
                                generator=torch.Generator().manual_seed(seed), batch_size=250)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        images = x.numpy()
        f = self.judge.features(images)
        pr = precision_recall(self.ref, f, 3)
        fd = frechet_distance(f, self.ref)
        return {"sampler": f"{scheduler.upper() if scheduler != 'dpm' else 'DPM-Solver++'} {steps}",
                "scheduler": scheduler, "steps": steps, "guidance": guidance, "fd": fd,
                "fd_over_floor": fd / self.floor["fd_real_floor"],
                "class_accuracy": coherence(self.judge.classifier, images, labels.numpy())["accuracy"],
                "precision": pr["precision"], "recall": pr["recall"],
                "s_per_1000_wall": 1000 * wall / self.n, "s_per_1000_cpu": 1000 * cpu / self.n,
                "load": load0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="train,samplers,guidance,arch")
    ap.add_argument("--work", default="/tmp/latentbridge_bench_diffusion", help="run folders (kept)")
    ap.add_argument("--n-samples", type=int, default=500, help="samples per row (every row the same)")
    ap.add_argument("--calib-reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=3, help="trainings run at the same time (separate processes)")
    ap.add_argument("-o", "--override", action="append", default=[], help="config override for every training")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"n_samples": args.n_samples, "work": str(work), "load_at_start": _load(), "parts": sorted(parts)}
    prev = REPO / "benchmarks" / "results" / f"{NAME}.json"
    if prev.is_file():  # keep the figures of the parts not run now (each part records its own model)
        import json

        old = json.loads(prev.read_text())
        for key in ("train", "samplers", "guidance", "arch"):
            if key not in parts and key in old:
                out[key] = old[key]
                out.setdefault("kept_from_earlier_run", {})[key] = {"date_utc": old.get("date_utc"),
                                                                   "code": old.get("code"), "work": old.get("work")}
    if "train" not in parts and "train" not in out and (work / "ours" / "config.json").is_file():
        out["train"] = {"runs": {"ours": run_record(work / "ours")}}  # a run trained outside this script
    if "train" in parts:
        out["train"] = train_part(work, args)
        write_results(NAME, out)
    bench = Bench(work / "ours", args.n_samples)
    out["split"], out["floor"] = bench.split, bench.floor
    out["judge"] = bench.judge.describe()
    print("real floor:", bench.floor, flush=True)
    default_g = float(bench.cfg.sampling.guidance)
    if "samplers" in parts:
        rows = []
        for scheduler, steps in SAMPLERS:
            rows.append(bench.row(scheduler, steps, default_g))
            print(rows[-1], flush=True)
        ref = rows[0]
        for r in rows:
            r["speedup_vs_ddpm1000_cpu"] = ref["s_per_1000_cpu"] / r["s_per_1000_cpu"]
            r["fd_vs_ddpm1000"] = r["fd"] / ref["fd"] - 1.0
        out["samplers"] = rows
        write_results(NAME, out)
    rows = out.get("samplers") or []
    fast = [r for r in rows if r["steps"] <= 50]
    if fast:
        best_fd = min(r["fd"] for r in rows)
        ok = [r for r in fast if r["fd"] <= 1.1 * best_fd] or [min(fast, key=lambda r: r["fd"])]
        pick = min(ok, key=lambda r: r["s_per_1000_cpu"])
        chosen = (pick["scheduler"], pick["steps"])
    else:
        chosen = ("dpm", 20)
    out["fast_sampler"] = {"scheduler": chosen[0], "steps": chosen[1]}
    if "guidance" in parts:
        out["guidance"] = []
        for g in GUIDANCE:
            out["guidance"].append(bench.row(*chosen, g))
            print(out["guidance"][-1], flush=True)
        write_results(NAME, out)
    if "arch" in parts:
        out["arch"] = []
        for name in PRESETS:
            b = bench if name == "ours" else Bench(work / name, args.n_samples, bench.judge)
            r = b.row(*chosen, default_g)
            t = (out.get("train") or {}).get("runs", {}).get(name, {})
            r.update(model=name, params=t.get("params"), epochs=t.get("epochs"), train_cpu_s=t.get("cpu_s"),
                     train_wall_s=t.get("wall_s"))
            out["arch"].append(r)
            print(r, flush=True)
        write_results(NAME, out)
    cols = ["sampler", "guidance", "fd", "fd_over_floor", "class_accuracy", "precision", "recall",
            "s_per_1000_cpu", "s_per_1000_wall"]
    for key in ("samplers", "guidance"):
        if out.get(key):
            print(f"\n{key} (n = {args.n_samples}; fd_real_floor {bench.floor['fd_real_floor']:.3g})")
            print(table(out[key], cols + (["speedup_vs_ddpm1000_cpu"] if key == "samplers" else [])))
    if out.get("arch"):
        print("\narchitectures")
        print(table(out["arch"], ["model", "params", "epochs", "train_cpu_s", *cols]))
    write_results(NAME, out)


if __name__ == "__main__":
    main()
