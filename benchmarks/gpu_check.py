"""The README's workflows end to end on one accelerator and precision: does each train, sample,
score and evaluate there, how long does each step take, and what do its metrics read.

Each step is the README's command (``python -m latentbridge ...`` of this checkout) with fewer epochs
(``--epochs-scale``); a step that fails records its exit code and the end of its output, and the
steps after it that need its output are skipped. The figures are a check that the path works on the
device (loss finite, metrics in range), not quality figures: the presets' quality is measured in the
other benchmarks with their full epochs.

    python benchmarks/gpu_check.py --work /tmp/gpu --accelerator gpu --precision bf16-mixed \
        [--data ../shared/data] [--epochs-scale 1.0] [--only anomaly,ddpm,mld_bridge,...] [--json OUT.json]
        [--throughput-epochs 2]

The ``throughput`` workflow trains the CPU presets ``ddpm_mnist`` and ``mmvae_bridge`` for the same epochs on the
machine's CPU (every core, 32-bit) and on the accelerator (32-bit, bf16-mixed): the training seconds per epoch each
model records, and the accelerator's speed-up over the CPU measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, machine_info, write_results  # noqa: E402

WORKFLOWS = ("anomaly", "ddpm", "mmvae_bridge", "mld_bridge", "cvae_tissue", "mld_digits", "throughput")
# training throughput: each preset's training for the same epochs on the machine's CPU (every core, 32-bit) and on
# the accelerator (32-bit and bf16), its seconds per epoch read from the model's config.json ("training")
HARDWARE = {"cpu-32": ("--accelerator", "cpu", "--precision", "32-true", "-o", "train.num_threads=all"),
            "gpu-32": ("--accelerator", "gpu", "--precision", "32-true"),
            "gpu-bf16": ("--accelerator", "gpu", "--precision", "bf16-mixed")}


class Steps:
    def __init__(self, timeout: float):
        self.rows: list[dict] = []
        self.timeout = timeout

    def run(self, workflow: str, name: str, *args: str, metrics: Path | None = None, keys=()) -> bool:
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cli(*args), capture_output=True, text=True, timeout=self.timeout, cwd=REPO)
            rc, out = p.returncode, (p.stdout + p.stderr)
        except subprocess.TimeoutExpired as e:
            rc, out = 124, ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
        row = {"workflow": workflow, "step": name, "rc": rc, "seconds": round(time.perf_counter() - t0, 1)}
        if rc == 0 and metrics is not None and metrics.exists():
            m = json.loads(metrics.read_text())
            row["metrics"] = {k: _pick(m, k) for k in keys}
        if rc != 0:
            row["tail"] = out[-3000:]
        self.rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "tail"}), flush=True)
        if rc != 0:
            print(row["tail"], flush=True)
        return rc == 0


def _pick(m: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(m, dict) or part not in m:
            return None
        m = m[part]
    return m


def throughput(rows: list[dict]) -> dict:
    """Seconds per training epoch by preset and hardware, and each hardware's speed-up over the CPU."""
    per: dict[str, dict[str, float]] = {}
    for r in rows:
        m = r.get("metrics") or {}
        if r["workflow"] == "throughput" and m.get("training.seconds") and m.get("training.epochs"):
            preset, label = r["step"].split(" ", 1)
            per.setdefault(preset, {})[label] = round(m["training.seconds"] / m["training.epochs"], 3)
    return {p: {"seconds_per_epoch": v, "speedup_over_cpu": {k: round(v["cpu-32"] / x, 2) for k, x in v.items()
                                                              if k != "cpu-32" and "cpu-32" in v}}
            for p, v in per.items()}


def epochs(n: int, scale: float) -> str:
    return str(max(1, round(n * scale)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--accelerator", default="gpu")
    ap.add_argument("--precision", default="bf16-mixed")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder with mnist/ and fsdd/")
    ap.add_argument("--epochs-scale", type=float, default=1.0)
    ap.add_argument("--only", default=",".join(WORKFLOWS))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per step")
    ap.add_argument("--throughput-epochs", type=int, default=2, help="epochs of each throughput training")
    ap.add_argument("--json", help="results file (default: benchmarks/results/gpu_check.json)")
    a = ap.parse_args()
    work, data, sc = Path(a.work).resolve(), Path(a.data).resolve(), a.epochs_scale
    work.mkdir(parents=True, exist_ok=True)
    hw = ["--accelerator", a.accelerator, "--precision", a.precision]
    s = Steps(a.timeout)
    only = set(a.only.split(","))

    if "anomaly" in only:  # the default (kNN on feature statistics: nothing to train) and the conv VAE
        d = work / "machine"
        if s.run("anomaly", "synth", "data", "synth", "machine", "--out", str(d), "--seed", "0", "--force"):
            for name, extra in (("knn_stats", ()), ("conv_vae", ("-o", "model.name=conv_vae",
                                                                 "-o", f"train.max_epochs={epochs(30, sc)}"))):
                m, o = work / f"pump-{name}", work / f"pump-{name}-scores"
                if s.run("anomaly", f"fit {name}", "anomaly", "fit", str(d / "train" / "normal"), "--out", str(m),
                         "--force", *hw, *extra):
                    s.run("anomaly", f"score {name}", "anomaly", "score", str(m), str(d / "test"), "--labels", "auto",
                          "--force", "--out", str(o), "--accelerator", a.accelerator,
                          metrics=o / "metrics.json", keys=("auc", "pauc", "n_files"))

    mnist, fsdd = data / "mnist", data / "fsdd"
    if "ddpm" in only and mnist.is_dir():
        r = work / "ddpm"
        if s.run("ddpm", "train", "train", "--config", "configs/ddpm_mnist_gpu.yaml", "--out", str(r), "--force", *hw,
                 "-o", f"data.root={mnist}", "-o", f"train.max_epochs={epochs(6, sc)}",
                 "-o", "monitor.fd_every=3", "-o", "monitor.fd_samples=200"):
            s.run("ddpm", "sample", "sample", str(r), "--num-samples", "64", "--steps", "20", "--out",
                  str(work / "ddpm-samples"), "--force")
            s.run("ddpm", "evaluate", "evaluate", str(r), "--out", str(work / "ddpm-eval"), "--force",
                  metrics=work / "ddpm-eval" / "metrics.json", keys=("fd", "fd_real_floor", "class_accuracy",
                                                                     "seconds_per_1000_samples"))

    bridge = work / "bridge"
    if only & {"mmvae_bridge", "mld_bridge"}:
        s.run("bridge", "synth", "data", "synth", "bridge", "--out", str(bridge), "--seed", "0", "--force")
    if "mmvae_bridge" in only and bridge.is_dir():
        r = work / "mm"
        if s.run("mmvae_bridge", "train", "train", "--config", "configs/mmvae_bridge.yaml", "--out", str(r), "--force",
                 *hw, "-o", f"data.root={bridge}", "-o", f"train.max_epochs={epochs(30, sc)}"):
            s.run("mmvae_bridge", "evaluate", "evaluate", str(r), "--out", str(work / "mm-eval"), "--force",
                  metrics=work / "mm-eval" / "metrics.json",
                  keys=("mask_iou", "mask_damaged_iou", "crack_localisation_error_m"))
    if "mld_bridge" in only and bridge.is_dir():
        r = work / "mld_bridge"
        if s.run("mld_bridge", "train", "train", "--config", "configs/mld_bridge.yaml", "--out", str(r), "--force",
                 *hw, "-o", f"data.root={bridge}", "-o", f"train.max_epochs={epochs(100, sc)}",
                 "-o", f"first_stage.stages.multimodal.train.max_epochs={epochs(60, sc)}",
                 "-o", f"first_stage.stages.supervised.train.max_epochs={epochs(30, sc)}"):
            cond = sorted((bridge / "Data").glob("Test_*/rec_01.csv"))[-1]
            s.run("mld_bridge", "sample", "sample", str(r), "--condition", str(cond), "--num-samples", "4",
                  "--out", str(work / "mld_bridge-samples"), "--force")
            s.run("mld_bridge", "evaluate", "evaluate", str(r), "--out", str(work / "mld_bridge-eval"), "--force",
                  metrics=work / "mld_bridge-eval" / "metrics.json",
                  keys=("mask_iou", "mask_damaged_iou", "crack_localisation_error_m"))

    if "cvae_tissue" in only:
        t, r = work / "tissue", work / "cvae"
        if s.run("cvae_tissue", "synth", "data", "synth", "tissue", "--out", str(t), "--seed", "0", "--force") and \
           s.run("cvae_tissue", "train", "train", "--config", "configs/cvae_tissue.yaml", "--out", str(r), "--force",
                 *hw, "-o", f"data.root={t}", "-o", f"train.max_epochs={epochs(40, sc)}"):
            s.run("cvae_tissue", "evaluate", "evaluate", str(r), "--out", str(work / "cvae-eval"), "--force",
                  metrics=work / "cvae-eval" / "metrics.json", keys=("denoise.psnr", "inpaint.psnr", "upscale.psnr"))
            s.run("cvae_tissue", "enhance", "enhance", str(r), str(t / "section_10.imzML"), "--task", "denoise",
                  "--out", str(work / "enhanced"), "--force")

    if "mld_digits" in only and mnist.is_dir() and (fsdd / "recordings").is_dir():
        r = work / "mld_digits"
        if s.run("mld_digits", "train", "train", "--config", "configs/mld_avdigits.yaml", "--out", str(r), "--force",
                 *hw, "-o", f"digits.fsdd_root={fsdd}", "-o", f"digits.mnist_root={mnist}",
                 "-o", f"train.max_epochs={epochs(200, sc)}",
                 "-o", f"first_stage.stages.audio.train.max_epochs={epochs(45, sc)}",
                 "-o", f"first_stage.stages.image.train.max_epochs={epochs(30, sc)}",
                 "-o", f"first_stage.written.epochs={epochs(30, sc)}"):
            s.run("mld_digits", "sample", "sample", str(r), "--condition",
                  str(fsdd / "recordings" / "7_jackson_0.wav"), "--num-samples", "4",
                  "--out", str(work / "mld_digits-samples"), "--force")
            s.run("mld_digits", "evaluate", "evaluate", str(r), "--out", str(work / "mld_digits-eval"), "--force",
                  metrics=work / "mld_digits-eval" / "metrics.json",
                  keys=("coherence_audio_to_image", "coherence_image_to_audio", "fd_image"))

    if "throughput" in only:
        presets = []
        if mnist.is_dir():  # the CPU preset, without the per-epoch samples (they are not training)
            presets.append(("ddpm_mnist", ("-o", f"data.root={mnist}", "-o", "monitor.fd_every=0",
                                           "-o", "monitor.grid_epochs=[]")))
        if bridge.is_dir() or s.run("throughput", "bridge synth", "data", "synth", "bridge", "--out", str(bridge),
                                    "--seed", "0", "--force"):
            presets.append(("mmvae_bridge", ("-o", f"data.root={bridge}",)))
        for preset, extra in presets:
            for label, hw_args in HARDWARE.items():
                r = work / f"tp-{preset}-{label}"
                s.run("throughput", f"{preset} {label}", "train", "--config", f"configs/{preset}.yaml", "--out",
                      str(r), "--force", *hw_args, *extra, "-o", f"train.max_epochs={a.throughput_epochs}",
                      metrics=r / "config.json", keys=("training.seconds", "training.epochs"))

    failed = [f"{r['workflow']}/{r['step']}" for r in s.rows if r["rc"] != 0]
    res = {"settings": vars(a), "machine": machine_info(), "steps": s.rows, "failed": failed,
           "throughput": throughput(s.rows)}
    try:
        import torch

        if torch.cuda.is_available():
            res["machine"]["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - informational only
        pass
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    else:
        write_results("gpu_check", res)
    print("failed:", failed or "none")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
