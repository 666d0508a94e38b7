"""Spoken digit → written digit from voices the digits model never heard.

The digits figures of ``latentbridge evaluate`` (coherence audio → image) are measured on the FSDD
test split, which holds other recordings of the *same six speakers* the model was trained on. Users
speak with their own voices. This script reads the images a trained digits MLD run generates from
the ten digit words spoken by synthetic voices (``espeak-ng``, several voices and speaking rates,
22.05 kHz: resampled by the toolkit like any user recording) with the project's MNIST classifier,
beside the same figure on the FSDD test clips measured in the same run (the reference).

    python benchmarks/mld_unseen_voice.py runs/mld_digits
    python benchmarks/mld_unseen_voice.py RUN --voices en-gb,en-us --rates 175 --samples 10
    python benchmarks/mld_unseen_voice.py RUN_WITHOUT_THEO --fsdd-speakers theo   # a human voice never heard

``--as-recorded`` also measures the FSDD reference clips as a user's recorder might hand them over:
0.4 s of quiet noise before the word and 0.6 s after it (-60 dBFS), 12 dB quieter, 44.1 kHz stereo.

``--in-a-room`` measures them once more in a reverberant room (0.35 s decay) through a telephone-band
microphone (300-3400 Hz), with pink noise 35 dB under the word's loudest frame, 0.3 s / 0.5 s of it around the
word, 16 kHz mono: a condition of the same family as the rooms and bands among the digits preset's recorded
copies (``first_stage.recorded``).

``--voice-memo`` measures them as a phone's voice memo might hold them, conditions that neither the copies nor
the room show: driven into soft clipping, 50 Hz mains hum, a low-bitrate MP3 at 22.05 kHz.

``--fsdd-speakers`` adds every recording of FSDD speakers the run was trained without
(``-o digits.held_out_speakers=[theo]``): human voices the model never heard; the reference is then
the FSDD test clips of the other speakers. It also asks where the digit is lost for those voices: a
logistic regression fitted on the training clips (one per clip) reads the digit of the held-out
speakers' recordings and of the test clips, once from the audio first stage's latents (what the
denoiser is conditioned on) and once from the log-mels themselves (what the first stage encodes).

Needs ``espeak-ng`` (Debian package); without it the script says so and stops. The run's sampler
settings (guidance, steps, seed) are used. Results: ``benchmarks/results/mld_unseen_voice.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = "en-gb,en-us,en-gb-scotland,en-029,en-gb-x-rp,en-us+f3"


def _accuracy(run: str, files: list[Path], digits: np.ndarray, n: int, judge) -> tuple[np.ndarray, np.ndarray]:
    """(per file share of the ``n`` generated images the classifier reads as the spoken digit,
    per file majority prediction)."""
    import torch

    from latentbridge.tasks.mld import sample

    res = sample(run, n, [str(f) for f in files])
    share, major = [], []
    for g, d in zip(res.groups, digits):
        with torch.no_grad():
            out = judge(torch.from_numpy(np.asarray(g["image"], dtype=np.float32)))
        pred = (out["logits"] if isinstance(out, dict) else out).argmax(1).numpy()
        share.append(float((pred == d).mean()))
        major.append(int(np.bincount(pred, minlength=10).argmax()))
    return np.asarray(share), np.asarray(major)


def as_recorded(src: Path, dst: Path, lead_s: float = 0.4, tail_s: float = 0.6, gain_db: float = -12.0,
                rate: int = 44100, noise_dbfs: float = -60.0, seed: int = 0) -> Path:
    """``src`` as a recorder might hand it over: quiet noise around the word, another level, rate and
    channel count (the word itself unchanged)."""
    import librosa
    import soundfile as sf

    wave, sr = sf.read(str(src), dtype="float32")
    wave = librosa.resample(wave, orig_sr=sr, target_sr=rate) * 10 ** (gain_db / 20)
    rng = np.random.default_rng(seed)
    out = np.concatenate([np.zeros(int(lead_s * rate), np.float32), wave, np.zeros(int(tail_s * rate), np.float32)])
    out = out + rng.standard_normal(len(out)).astype(np.float32) * 10 ** (noise_dbfs / 20)
    sf.write(str(dst), np.stack([out, out], axis=1), rate, subtype="PCM_16")
    return dst


def in_a_room(src: Path, dst: Path, seed: int = 0, rt60_s: float = 0.35, band_hz: tuple = (300.0, 3400.0),
              noise_below_peak_db: float = 35.0, lead_s: float = 0.3, tail_s: float = 0.5, rate: int = 16000) -> Path:
    """``src`` as heard in a reverberant room through a telephone-band microphone, with pink background noise
    (the same family as the rooms and bands of ``latentbridge.data.digits.as_recorded_clips``, not the same draws)."""
    import librosa
    import soundfile as sf
    from scipy.signal import butter, fftconvolve, sosfilt

    wave, sr = sf.read(str(src), dtype="float32")
    wave = librosa.resample(wave, orig_sr=sr, target_sr=rate).astype(np.float64)
    rng = np.random.default_rng(seed)
    t = np.arange(int(rt60_s * rate)) / rate
    ir = rng.standard_normal(len(t)) * np.exp(-6.91 * t / rt60_s) * 0.08  # -60 dB after rt60_s
    ir[0] = 1.0
    out = np.concatenate([np.zeros(int(lead_s * rate)), fftconvolve(wave, ir), np.zeros(int(tail_s * rate))])
    out = sosfilt(butter(4, band_hz, btype="bandpass", fs=rate, output="sos"), out)
    frame = int(0.02 * rate)
    peak = np.sqrt((out[: len(out) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1).max())
    spec = np.fft.rfft(rng.standard_normal(len(out)))
    pink = np.fft.irfft(spec / np.sqrt(np.maximum(np.arange(len(spec)), 1)), n=len(out))
    out = out + pink / pink.std() * peak * 10 ** (-noise_below_peak_db / 20)
    sf.write(str(dst), (out / max(1.0, np.abs(out).max() / 0.9)).astype(np.float32), rate, subtype="PCM_16")
    return dst


def as_voice_memo(src: Path, dst: Path, seed: int = 0, drive: float = 2.5, hum_dbfs: float = -40.0,
                  noise_dbfs: float = -55.0, lead_s: float = 0.2, tail_s: float = 0.3, rate: int = 22050) -> Path:
    """``src`` as a phone's voice memo might hold it: levelled to a 0.9 peak and driven into soft clipping
    (tanh), 50 Hz mains hum with its third harmonic, faint noise, a low-bitrate MP3 (about 17 kbit/s)."""
    import librosa
    import soundfile as sf

    wave, sr = sf.read(str(src), dtype="float32")
    wave = librosa.resample(wave, orig_sr=sr, target_sr=rate).astype(np.float64)
    wave = np.tanh(drive * 0.9 * wave / np.abs(wave).max()) / np.tanh(drive)
    out = np.concatenate([np.zeros(int(lead_s * rate)), wave, np.zeros(int(tail_s * rate))])
    t = np.arange(len(out)) / rate
    hum = 10 ** (hum_dbfs / 20) * (np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t))
    out = out + hum + np.random.default_rng(seed).standard_normal(len(out)) * 10 ** (noise_dbfs / 20)
    sf.write(str(dst), np.clip(out, -1, 1).astype(np.float32), rate, format="MP3", compression_level=0.95,
             bitrate_mode="CONSTANT")
    return dst


#: The recorded conditions of the reference clips: (argument, how a clip is made so, its file name, its row).
CONDITIONS = (
    ("as_recorded", as_recorded, "recorded_{name}",
     "the same FSDD test clips as recorded (silence around, -12 dB, 44.1 kHz stereo)"),
    ("in_a_room", in_a_room, "room_{name}",
     "the same FSDD test clips in a room (reverberation 0.35 s, 300-3400 Hz, pink noise -35 dB, 16 kHz)"),
    ("voice_memo", as_voice_memo, "memo_{stem}.mp3",
     "the same FSDD test clips as a voice memo (soft clipping, 50 Hz hum, MP3 ~17 kbit/s)"),
)


def _probe(run: str, held: list[Path], held_digits: np.ndarray) -> list[dict]:
    """Linear read-outs of the digit, fitted on the run's training clips: from the audio first stage's
    latents and from the log-mels, on the FSDD test clips (seen speakers) and on ``held`` (unseen)."""
    from sklearn.linear_model import LogisticRegression

    from latentbridge.data.digits import clip_features, load_clips
    from latentbridge.tasks.mld import digit_pairs, load_run

    saved, stages = load_run(run)
    train, _ = digit_pairs(saved.workflow, "train")
    test = digit_pairs(saved.workflow, "test")
    first = lambda d: np.unique(d.clip, return_index=True)[1]  # noqa: E731 - one row per clip
    it, iv = first(train), first(test)
    held_mel = clip_features(load_clips(held, saved.transform), saved.transform)
    sets = {"train": train.audio[it], "test": test.audio[iv], "held": held_mel}
    ys = {"train": train.label[it], "test": test.label[iv], "held": held_digits}
    views = {"audio first stage latents": lambda x: stages.encode("audio", x).numpy(),
             "log-mels": lambda x: x.reshape(len(x), -1)}
    rows = []
    for name, view in views.items():
        x = {k: view(v) for k, v in sets.items()}
        mu, sd = x["train"].mean(0), x["train"].std(0) + 1e-6
        clf = LogisticRegression(C=0.01 if name == "log-mels" else 1.0, max_iter=5000)
        clf.fit((x["train"] - mu) / sd, ys["train"])
        acc = {k: float(clf.score((x[k] - mu) / sd, ys[k])) for k in ("train", "test", "held")}
        rows.append({"read from": name, "dims": int(x["train"].shape[1]), "training clips": acc["train"],
                     "test clips (seen speakers)": acc["test"], "unseen speakers": acc["held"]})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a trained configs/mld_avdigits.yaml run")
    ap.add_argument("--voices", default=VOICES, help="espeak-ng voices, comma-separated")
    ap.add_argument("--rates", default="140,175", help="speaking rates (words per minute), comma-separated")
    ap.add_argument("--samples", type=int, default=10, help="images generated per recording")
    ap.add_argument("--fsdd-per-digit", type=int, default=30, help="FSDD test clips per digit for the reference")
    ap.add_argument("--suffix", default="", help="results file name suffix")
    ap.add_argument("--as-recorded", action="store_true",
                    help="also the FSDD reference clips with silence around them, quieter, at 44.1 kHz stereo")
    ap.add_argument("--in-a-room", action="store_true",
                    help="also the FSDD reference clips in a reverberant room through a telephone-band microphone")
    ap.add_argument("--voice-memo", action="store_true",
                    help="also the FSDD reference clips clipped, with mains hum, as a low-bitrate MP3")
    ap.add_argument("--fsdd-speakers", default="", help="FSDD speakers the run was trained without (comma-separated): "
                                                        "all their recordings are measured too")
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng): nothing to measure")
        return 0
    import torch

    from latentbridge.tasks.crossmodal import digit_judges
    from latentbridge.tasks.mld import load_run

    torch.set_num_threads(1)
    saved, _ = load_run(args.run)
    cfg = saved.workflow
    if cfg.data.kind != "digits":
        raise SystemExit(f"{args.run}: a digits run is needed, this one is {cfg.data.kind}")
    judges = digit_judges(cfg, saved.transform)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="unseen_voice_"))
    try:
        files, digits, keys = [], [], []
        for v in voices:
            for r in rates:
                for d, w in enumerate(WORDS):
                    f = tmp / f"{v.replace('+', '_')}_{r}_{w}.wav"
                    subprocess.run(["espeak-ng", "-v", v, "-s", str(r), "-w", str(f), w], check=True,
                                   capture_output=True)
                    files.append(f)
                    digits.append(d)
                    keys.append((v, r))
        digits = np.asarray(digits)
        share, major = (_accuracy(args.run, files, digits, args.samples, judges.mnist) if files
                        else (np.zeros(0), np.zeros(0, int)))  # --voices "": FSDD only
        rec = Path(cfg.digits.fsdd_root) / "recordings"
        unseen = [s.strip() for s in args.fsdd_speakers.split(",") if s.strip()]
        if missing := sorted(set(unseen) - set(cfg.digits.held_out_speakers)):
            raise SystemExit(f"{args.run} was trained with speakers {missing}: not unseen voices")
        held = sorted(p for p in rec.glob("*.wav") if p.stem.split("_")[1] in unseen)
        if unseen:
            held_digits = np.asarray([int(p.stem.split("_")[0]) for p in held])
            held_share, held_major = _accuracy(args.run, held, held_digits, args.samples, judges.mnist)
        test = sorted(p for p in rec.glob("*.wav") if int(p.stem.split("_")[2]) < 5  # FSDD's official test split
                      and p.stem.split("_")[1] not in unseen)
        rng = np.random.default_rng(0)
        ref = []
        for d in range(10):
            mine = [p for p in test if int(p.stem.split("_")[0]) == d]
            ref += [mine[i] for i in np.sort(rng.permutation(len(mine))[:args.fsdd_per_digit])]
        ref_digits = np.asarray([int(p.stem.split("_")[0]) for p in ref])
        ref_share, ref_major = _accuracy(args.run, ref, ref_digits, args.samples, judges.mnist)
        recorded = {}  # row label → (share, majority) of the reference clips under each condition asked for
        for arg, make, name, label in CONDITIONS:
            if getattr(args, arg):
                cond_files = [make(p, tmp / name.format(name=p.name, stem=p.stem), seed=i) for i, p in enumerate(ref)]
                recorded[label] = _accuracy(args.run, cond_files, ref_digits, args.samples, judges.mnist)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for v in voices:
        for r in rates:
            m = np.asarray([k == (v, r) for k in keys])
            rows.append({"voice": v, "rate_wpm": r, "images_read_as_the_digit": float(share[m].mean()),
                         "recordings_majority_right": float((major[m] == digits[m]).mean())})
    if files:
        rows.append({"voice": "all synthetic", "rate_wpm": None, "images_read_as_the_digit": float(share.mean()),
                     "recordings_majority_right": float((major == digits).mean())})
    if unseen:
        rows.append({"voice": f"FSDD {', '.join(unseen)} (never heard; all {len(held)} recordings)", "rate_wpm": None,
                     "images_read_as_the_digit": float(held_share.mean()),
                     "recordings_majority_right": float((held_major == held_digits).mean())})
    rows.append({"voice": "FSDD test clips (seen speakers)", "rate_wpm": None,
                 "images_read_as_the_digit": float(ref_share.mean()),
                 "recordings_majority_right": float((ref_major == ref_digits).mean())})
    for label, (cond_share, cond_major) in recorded.items():
        rows.append({"voice": label, "rate_wpm": None, "images_read_as_the_digit": float(cond_share.mean()),
                     "recordings_majority_right": float((cond_major == ref_digits).mean())})
    print(table(rows, list(rows[0]), {"images_read_as_the_digit": ".3f", "recordings_majority_right": ".3f"}))
    probe = _probe(args.run, held, held_digits) if unseen else []
    if probe:
        print("\nthe digit read linearly (logistic regression fitted on the training clips):")
        print(table(probe, list(probe[0]), {k: ".3f" for k in list(probe[0])[2:]}))
    per_digit = {w: float(share[digits == d].mean()) for d, w in enumerate(WORDS)} if files else {}
    confusion = np.zeros((10, 10), dtype=int)
    for d, p in zip(digits, major):
        confusion[d, p] += 1
    print("synthetic voices, images read as the digit, per digit: "
          + ", ".join(f"{w} {v:.2f}" for w, v in per_digit.items()))
    write_results("mld_unseen_voice" + ("_" + "_".join(unseen) if unseen else "") + args.suffix, {"run": str(args.run), "voices": voices, "rates_wpm": rates,
                                       "samples_per_recording": args.samples, "sampler": saved.info.get("config", {}).get("sampling"),
                                       "rows": rows, "per_digit": per_digit,
                                       "majority_confusion_rows_true_cols_predicted": confusion.tolist(),
                                       "n_synthetic": len(files), "n_fsdd_reference": len(ref),
                                       "fsdd_unseen_speakers": unseen, "n_fsdd_unseen": len(held),
                                       "linear_probe": probe})
    return 0


if __name__ == "__main__":
    sys.exit(main())
