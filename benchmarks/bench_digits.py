"""Spoken + written digits: cross-modal coherence, latent clustering, and mel-AE audio quality.

Three parts (``--parts``, default all three; each can run alone):

``coherence``
    Audio-visual MoPoE VAE (``configs/avdigits.yaml``) on the test pairs: spoken digit → image
    (judged by the MNIST classifier), image → log-mel (judged by the FSDD classifier), and
    image → log-mel → Griffin-Lim wav → re-analysed log-mel (FSDD classifier), by both
    generation routes (``posterior``: the source's latent decoded by the target decoder;
    ``bridge``: the source's latent mapped to the target's latent by the model's latent bridge
    first). Runs ``latentbridge evaluate RUN --out WORK/eval`` (the package's own figures) and
    recomputes the coherences in-process on the same test pairs with the same code
    (``predict_all`` + ``coherence``), adding per-digit figures, the classifiers on the real
    counterparts, and image → wav on every test pair. Classifier test accuracies come from the
    cached classifiers (``latentbridge classifier train``).

``clustering``
    k-means (10 clusters, seed 0) NMI / ARI / silhouette on the audio-only posterior mode, the
    image-only posterior mode and the joint posterior mode (from ``evaluate``'s metrics.json; GMM
    and the association figures from ``latentbridge analyze RUN --out WORK/analysis``), and, as
    the baseline measured in the same run with the same functions, k-means on the raw inputs
    (flattened dB log-mel, 8192-d; flattened pixels, 784-d).

``mel``
    Mel autoencoder (``configs/mel_ae.yaml``) on its held-out FSDD files (``data.val_files``):
    PESQ (narrow-band, 8 kHz) / STOI / LSD of (a) Griffin-Lim of the AE's reconstruction and
    (b) Griffin-Lim of the input mel itself (the ceiling of the features) for several
    Griffin-Lim iteration counts, and the processing time per second of audio of each setting
    (1 torch thread, batches of ``--time-batch`` 1-s windows, settings interleaved round robin,
    median of ``--reps``), also as a ratio to the 32-iteration setting of the same path measured
    in the same repetition.

Usage (from the repository root)::

    python benchmarks/bench_digits.py                                   # trains both presets first (~40 min here)
    python benchmarks/bench_digits.py --run-dir /tmp/avfull --mel-run /tmp/ae_real   # reuse trained runs
    python benchmarks/bench_digits.py --parts mel --mel-run /tmp/ae_real

Data: ``../shared/data/fsdd`` and ``../shared/data/mnist`` relative to the repository. Only the
10,000 MNIST test images exist there: the code splits them 8,000 / 2,000 (seeded), so every
MNIST-side figure is on that offline split, not the official one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS_DIR, cli, interleaved, median, per_rep_ratio, table, write_results  # noqa: E402

NAME = "bench_digits"
FSDD_ROOT = "../shared/data/fsdd"
MNIST_ROOT = "../shared/data/mnist"
GOAL = 0.90


def _cli(*args: str) -> None:
    print("$ latentbridge " + " ".join(args), flush=True)
    t0 = time.time()
    subprocess.run(cli(*args), cwd=REPO, check=True)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)


def _train(config: str, out: Path, extra: list[str]) -> Path:
    _cli("train", "--config", config, "--out", str(out), "--force", "-o", "train.progress_bar=false", *extra)
    return out


# ----------------------------------------------------------------------------- part 1: coherence


def _load_av(run_dir: Path):
    from latentbridge.models.hub import load_model
    from latentbridge.tasks.avdigits import pairs, predict_all

    saved = load_model(run_dir)
    cfg = saved.workflow
    test, info = pairs(cfg, "test")  # the test pairs evaluate uses, with the run's own features
    pred = predict_all(saved.model.eval(), test)
    return saved, cfg, test, info, pred


def part_coherence(run_dir: Path, work: Path, gl_iter: int, av) -> dict:
    import torch

    from latentbridge.metrics.classification import coherence
    from latentbridge.tasks.classify import load_classifier
    from latentbridge.transforms.spec import build_spectrogram

    _cli("evaluate", str(run_dir), "--out", str(work / "eval"), "--force")
    ev = json.loads((work / "eval" / "metrics.json").read_text())
    saved, cfg, test, info, pred = av
    # the judges evaluate used (it trains them on first use): the FSDD one reads the run's own features
    mnist_clf, mnist_info = load_classifier("mnist", data_root=cfg.digits.mnist_root, train_if_missing=False)
    fsdd_clf, fsdd_info = load_classifier("fsdd", data_root=cfg.digits.fsdd_root, spec=saved.transform,
                                          train_if_missing=False)
    y = test.label
    # reference: the classifiers on the *real* test pairs' other modality
    real_img = coherence(mnist_clf, torch.from_numpy(test.image), y)
    real_aud = coherence(fsdd_clf, torch.from_numpy(test.audio), y)
    transform = build_spectrogram(saved.transform)  # the run's features (eval mode)
    n, length = len(y), test.waves.shape[-1]
    with torch.no_grad():  # does the wav round trip alone cost accuracy?
        real_w = transform.invert(torch.from_numpy(test.audio), length=length, n_iter=gl_iter)
        real_rt = coherence(fsdd_clf, transform(real_w.reshape(n, -1)), y)
    routes = {"posterior": ""} | ({"bridge": "_bridge"} if "audio_to_image_bridge" in pred else {})
    rows, per_digit, extra = [], {d: {"digit": d, "n": None} for d in range(10)}, {}
    for route, suffix in routes.items():
        a2i = coherence(mnist_clf, torch.from_numpy(pred["audio_to_image" + suffix]), y)
        i2a = coherence(fsdd_clf, torch.from_numpy(pred["image_to_audio" + suffix]), y)
        t0 = time.perf_counter()
        with torch.no_grad():
            wav = transform.invert(torch.from_numpy(pred["image_to_audio" + suffix]), length=length, n_iter=gl_iter)
            i2w = coherence(fsdd_clf, transform(wav.reshape(n, -1)), y)
        gl_s = time.perf_counter() - t0
        for name, res, real, clf_info, key in (
                ("audio → image (MNIST clf.)", a2i, real_img, mnist_info, "coherence_audio_to_image"),
                ("image → log-mel (FSDD clf.)", i2a, real_aud, fsdd_info, "coherence_image_to_audio"),
                (f"image → log-mel → GL{gl_iter} wav → log-mel", i2w, real_rt, fsdd_info, "coherence_image_to_wav")):
            rows.append({"route": route, "direction": name, "package evaluate": ev.get(key + suffix),
                         "in-process (all pairs)": res["accuracy"], "n": res["n"],
                         "classifier on real": real["accuracy"], "classifier test acc.": clf_info.get("test_accuracy"),
                         "min per digit": min(v for v in res["per_class_accuracy"].values() if v is not None),
                         "mean p(target)": res.get("mean_target_probability"),
                         "goal ≥ 0.90": "met" if res["accuracy"] >= GOAL else "NOT met"})
        for d in range(10):
            per_digit[d].update({f"{route}: audio → image": _pc(a2i, d), f"{route}: image → log-mel": _pc(i2a, d),
                                 f"{route}: image → wav": _pc(i2w, d), "n": _pcn(a2i, d)})
        extra[route] = {"confusion": {"audio_to_image": a2i["confusion_matrix"], "image_to_audio": i2a["confusion_matrix"],
                                      "image_to_wav": i2w["confusion_matrix"]},
                        "griffin_lim_seconds_all_pairs": round(gl_s, 2)}
    per_digit = list(per_digit.values())
    print("\n## coherence (test pairs; MNIST side = offline 8000/2000 split of the 10k test images)\n")
    print(table(rows, list(rows[0]), {k: ".3f" for k in ("package evaluate", "in-process (all pairs)", "classifier on real",
                                                         "classifier test acc.", "min per digit", "mean p(target)")}))
    print()
    print(table(per_digit, list(per_digit[0]), {k: ".3f" for k in per_digit[0] if "→" in k}))
    return {
        "run_dir": str(run_dir), "run_training": saved.info.get("training", {}), "run_data": saved.info.get("data"),
        "test_info": info, "griffin_lim_iterations": gl_iter, "evaluate_metrics": ev, "rows": rows,
        "per_digit": per_digit, "by_route": extra,
        "classifiers": {"mnist": {k: mnist_info.get(k) for k in ("test_accuracy", "train_accuracy", "n_train", "n_test",
                                                                 "created_utc")},
                        "fsdd": {k: fsdd_info.get(k) for k in ("test_accuracy", "train_accuracy", "n_train", "n_test",
                                                               "created_utc")}},
    }


def _pc(res: dict, d: int):
    pc = res["per_class_accuracy"]
    return pc.get(str(d), pc.get(d))


def _pcn(res: dict, d: int):
    pc = res["per_class_n"]
    return pc.get(str(d), pc.get(d))


# ----------------------------------------------------------------------------- part 2: clustering


def part_clustering(run_dir: Path, work: Path, av, skip_analyze: bool) -> dict:
    from latentbridge.metrics.clustering import cluster, clustering_scores

    ev_path = work / "eval" / "metrics.json"
    if not ev_path.exists():
        _cli("evaluate", str(run_dir), "--out", str(work / "eval"), "--force")
    ev = json.loads(ev_path.read_text())
    an = None
    if not skip_analyze:
        _cli("analyze", str(run_dir), "--out", str(work / "analysis"), "--force")
        an = json.loads((work / "analysis" / "metrics.json").read_text())
    _, _, test, _, pred = av
    y = test.label
    n = len(y)
    rows = []
    for space, name in (("z_audio", "latent: audio-only posterior (32-d)"),
                        ("z_image", "latent: image-only posterior (32-d)"),
                        ("z_joint", "latent: joint posterior (32-d)")):
        r = {"representation": name, "k-means NMI": ev[f"{space}_kmeans_nmi"], "ARI": ev[f"{space}_kmeans_ari"],
             "silhouette": ev[f"{space}_silhouette"]}
        if an:
            r.update({"GMM NMI": an[f"{space}_gmm_nmi"], "GMM ARI": an[f"{space}_gmm_ari"]})
        rows.append(r)
    raw = {"raw: flattened dB log-mel (8192-d)": test.audio.reshape(n, -1),
           "raw: flattened pixels (784-d)": test.image.reshape(n, -1),
           "raw: standardised log-mel ⊕ pixels": None}
    a = test.audio.reshape(n, -1).astype(np.float64)
    i = test.image.reshape(n, -1).astype(np.float64)
    st = lambda x: (x - x.mean(0)) / (x.std(0) + 1e-8)  # noqa: E731
    raw["raw: standardised log-mel ⊕ pixels"] = np.concatenate([st(a) / np.sqrt(a.shape[1]),
                                                                st(i) / np.sqrt(i.shape[1])], axis=1)
    t_raw = {}
    for name, x in raw.items():
        t0 = time.perf_counter()
        lab = cluster(x, "kmeans", 10, seed=0)
        sc = clustering_scores(x, lab, y)
        t_raw[name] = round(time.perf_counter() - t0, 2)
        rows.append({"representation": name, "k-means NMI": sc["nmi"], "ARI": sc["ari"], "silhouette": sc["silhouette"]})
    # sanity: evaluate's latent k-means recomputed in-process on the same predictions
    check = {}
    for space in ("z_audio", "z_image", "z_joint"):
        lab = cluster(pred[space], "kmeans", 10, seed=0)
        check[space] = clustering_scores(pred[space], lab, y)["nmi"]
    print(f"\n## k-means (10 clusters, seed 0) on the {n} test pairs (MNIST: offline 8000/2000 split)\n")
    cols = ["representation", "k-means NMI", "ARI", "silhouette"] + (["GMM NMI", "GMM ARI"] if an else [])
    print(table(rows, cols, {c: ".3f" for c in cols[1:]}))
    if an:
        print("\nanalyze:", {k: round(v, 3) for k, v in an.items() if isinstance(v, float) and not k.startswith("z_")})
    print("in-process k-means NMI of the latents (check against evaluate):", {k: round(v, 3) for k, v in check.items()})
    return {"n_test_pairs": n, "n_unique_clips": int(len(np.unique(test.clip))), "rows": rows,
            "analyze_metrics": an, "latent_nmi_recomputed": check, "raw_kmeans_seconds": t_raw}


# ----------------------------------------------------------------------------- part 3: mel AE audio


def held_out_windows(saved, transform, files: list[Path], max_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """(waveform windows (N, T), features (N, C, F, T)) of a mel AE's held-out files, at most
    ``max_windows`` evenly spread over them: the steps ``latentbridge evaluate`` takes for an audio
    autoencoder (``tasks.autoencode.evaluate``, which returns metrics and examples but not the arrays)."""
    from latentbridge.data.audio import FeatureExtractor

    ex = FeatureExtractor.from_spec(saved.transform, transform, use_cache=False)
    windows = np.concatenate([ex.windows_of(ex.read(f), f)[0] for f in files])
    if len(windows) > max_windows:
        windows = windows[np.unique(np.linspace(0, len(windows) - 1, max_windows).round().astype(int))]
    return windows, ex.features_of_windows(windows)


def part_mel(mel_run: Path, iters: list[int], max_windows: int, time_batch: int, reps: int) -> dict:
    import torch

    from latentbridge.metrics.signal import audio_metrics
    from latentbridge.models.hub import load_model
    from latentbridge.transforms.spec import build_spectrogram
    from latentbridge.utils import batched

    torch.set_num_threads(1)
    saved = load_model(mel_run)
    transform = build_spectrogram(saved.transform)
    files = [Path(p) for p in (saved.info.get("data") or {}).get("val_files", [])]
    if not files:
        raise SystemExit(f"{mel_run}: no held-out files recorded (data.val_files)")
    windows, feats = held_out_windows(saved, transform, files, max_windows)
    model = saved.model.eval()
    rec = batched(model.reconstruct, feats, batch_size=64).numpy()
    sr, length = saved.transform.sample_rate, windows.shape[-1]

    quality = []
    for n_iter in iters:
        for path, x in (("(a) mel AE reconstruction", rec), ("(b) input mel (ceiling)", feats)):
            t0 = time.perf_counter()
            with torch.no_grad():
                w = transform.invert(torch.from_numpy(x), length=length, n_iter=n_iter)[:, 0].numpy()
            t_gl = time.perf_counter() - t0
            m = audio_metrics(w, windows, sr)
            quality.append({"path": path, "GL iterations": n_iter, "PESQ": m["pesq"], "STOI": m["stoi"],
                            "LSD dB": m["lsd"], "SI-SDR dB": m["si_sdr"], "pesq_nan": m["pesq_nan"],
                            "stoi_nan": m["stoi_nan"], "gl_seconds_once": round(t_gl, 2)})
            print(f"  {path:28s} GL {n_iter:4d}: PESQ {m['pesq']:.3f}  STOI {m['stoi']:.3f}  LSD {m['lsd']:.2f} dB "
                  f"(NaN: pesq {m['pesq_nan']}, stoi {m['stoi_nan']})", flush=True)

    # timing: one batch of `time_batch` 1-s windows per call, interleaved, 1 thread
    xb = torch.from_numpy(np.ascontiguousarray(feats[:time_batch]))
    secs = time_batch * length / sr

    def ae_then_gl(k):
        def f():
            with torch.no_grad():
                r = model.reconstruct(xb)
                transform.invert(r, length=length, n_iter=k)
        return f

    def gl_only(k):
        def f():
            with torch.no_grad():
                transform.invert(xb, length=length, n_iter=k)
        return f

    def ae_only():
        with torch.no_grad():
            model.reconstruct(xb)

    fns = {"model forward only": ae_only}
    for k in iters:
        fns[f"a{k}"] = ae_then_gl(k)
        fns[f"b{k}"] = gl_only(k)
    samples = interleaved(fns, reps=reps, warmup=1)
    ref = 32 if 32 in iters else iters[len(iters) // 2]
    timing = []
    for k in iters:
        for tag, path in (("a", "(a) mel AE + GL"), ("b", "(b) GL of input mel")):
            s = samples[f"{tag}{k}"]
            timing.append({"path": path, "GL iterations": k, "ms per s of audio": 1000 * median(s) / secs,
                           "RTF": median(s) / secs, f"× GL{ref} (same path)": per_rep_ratio(s, samples[f"{tag}{ref}"])})
    fwd = median(samples["model forward only"])
    print(f"\n## mel AE held-out windows: {len(windows)} (from {len(files)} held-out files)\n")
    print(table(quality, ["path", "GL iterations", "PESQ", "STOI", "LSD dB", "SI-SDR dB", "pesq_nan", "stoi_nan"],
                {"PESQ": ".3f", "STOI": ".3f", "LSD dB": ".2f", "SI-SDR dB": ".1f"}))
    print(f"\ntiming: batches of {time_batch} × 1-s windows, 1 thread, {reps} interleaved repetitions; "
          f"model forward alone {1000 * fwd / secs:.2f} ms per s of audio\n")
    print(table(timing, list(timing[0]), {"ms per s of audio": ".1f", "RTF": ".4f", f"× GL{ref} (same path)": ".2f"}))
    return {"mel_run": str(mel_run), "run_training": saved.info.get("training"),
            "n_val_files": len(files), "n_windows": int(len(windows)), "sample_rate": sr, "window_s": length / sr,
            "mel_mse_db2": float(((feats - rec) ** 2).mean()), "quality": quality, "timing": timing,
            "model_forward_ms_per_s": 1000 * fwd / secs, "timing_samples_s": samples, "time_batch": time_batch,
            "reps": reps, "reference_iterations": ref}


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="coherence,clustering,mel",
                    help="comma-separated subset of coherence,clustering,mel")
    ap.add_argument("--run-dir", type=Path, help="trained avdigits run to reuse (default: train configs/avdigits.yaml)")
    ap.add_argument("--mel-run", type=Path, help="trained mel AE to reuse (default: train configs/mel_ae.yaml)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_digits"),
                    help="folder for trained runs and evaluate/analyze outputs")
    ap.add_argument("--gl-iter", type=int, default=32, help="Griffin-Lim iterations for image → wav (evaluate's default)")
    ap.add_argument("--iters", default="4,8,16,32,64,128", help="Griffin-Lim iterations for the mel part")
    ap.add_argument("--max-windows", type=int, default=300, help="held-out windows scored in the mel part")
    ap.add_argument("--time-batch", type=int, default=32, help="1-s windows per timed call in the mel part")
    ap.add_argument("--reps", type=int, default=5, help="interleaved timing repetitions in the mel part")
    ap.add_argument("--skip-analyze", action="store_true", help="clustering part: evaluate's figures only")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = set(parts) - {"coherence", "clustering", "mel"}
    if bad:
        ap.error(f"unknown part(s) {sorted(bad)}")
    args.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)  # shared 2-core machine

    prev_path = RESULTS_DIR / f"{NAME}.json"
    results = json.loads(prev_path.read_text()).get("parts", {}) if prev_path.exists() else {}
    stamp = {"command": "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
             "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    if {"coherence", "clustering"} & set(parts):
        run_dir = args.run_dir
        if run_dir is None:
            run_dir = _train("configs/avdigits.yaml", args.work / "av", [
                "-o", f"digits.fsdd_root={FSDD_ROOT}", "-o", f"digits.mnist_root={MNIST_ROOT}"])
        av = _load_av(run_dir)
        if "coherence" in parts:
            results["coherence"] = {**stamp, **part_coherence(run_dir, args.work, args.gl_iter, av)}
        if "clustering" in parts:
            results["clustering"] = {**stamp, **part_clustering(run_dir, args.work, av, args.skip_analyze)}
    if "mel" in parts:
        mel_run = args.mel_run
        if mel_run is None:
            # 164 of the 3,000 FSDD clips are shorter than a quarter of the 1-s window, which the
            # short-recording rule refuses: skip them (with a warning) instead of stopping
            mel_run = _train("configs/mel_ae.yaml", args.work / "mel_ae",
                             ["-o", f"data.train_dir={FSDD_ROOT}/recordings", "-o", "data.skip_bad_files=true"])
        iters = [int(x) for x in args.iters.split(",")]
        results["mel"] = {**stamp, **part_mel(mel_run, iters, args.max_windows, args.time_batch, args.reps)}
    write_results(NAME, {"mnist_note": "only the 10k MNIST test images exist: split 8000/2000 (seeded) offline",
                         "parts": results})


if __name__ == "__main__":
    main()
