"""Written digits as users hand them over: does the image reader put them in MNIST's frame?

The digit models (the audio-visual VAE, the digits MLD) and their judge, the MNIST classifier, saw
MNIST's digits: light ink on black, fitted in a 20 x 20 box of the 28 x 28 frame, centred on their
centre of mass. A user's digit is a photo or scan of dark ink on paper, or strokes on a transparent
drawing canvas, of any size, with the digit anywhere in it. This script renders held-out MNIST test
digits (the classifier's test split, never trained on) as such files and reads each back two ways:

* ``whole``: the reader before (grey levels, the whole image area-resized to 28 x 28, inverted when its
  border is light, alpha composited on black) — the reference;
* ``framed``: :func:`latentbridge.data.digits.read_digit_image` (paper level out, ink's box scaled to 20/28,
  centre of mass centred; see :func:`latentbridge.data.digits.frame_digit`),

and reports the MNIST classifier's accuracy on each, with a 95 % bootstrap interval, per rendering:

* ``mnist_png``: the 28 x 28 digit itself as a PNG (the classifier's own test figure);
* ``paper_scan``: dark ink on light paper, 8x (224 x 224), centred, paper grain, JPEG quality 85;
* ``photo``: dark ink, 3-7x, anywhere on a 320 x 240 sheet lit from one side (a 25 % gradient), grain,
  JPEG quality 80;
* ``canvas``: black strokes on a transparent 280 x 280 canvas (a browser drawing pad's PNG), 6-9x, off
  centre by up to a fifth of the canvas.

With ``--source uci``, the digits are real handwriting from another source instead: the UCI optical digits
bundled with scikit-learn (``sklearn.datasets.load_digits``: 1,797 digits of 43 writers, 8 x 8 px, 17 grey
levels), enlarged to 28 x 28 (bicubic) before the same renderings — whole-frame digits, unlike MNIST's 20-px box.

With ``--mld RUN`` (a trained ``configs/mld_avdigits.yaml`` run), also the image -> audio coherence of that
model on its own test pairs' images rendered the same ways: each read image conditions the MLD (the preset's
sampler and guidance), the generated log-mel is read by the FSDD classifier — what a user who photographs a
digit gets from ``latentbridge sample RUN --condition photo.jpg``.

    python benchmarks/digit_images.py --mnist ../shared/data/mnist --n 2000 --out benchmarks/results/digit_images.json
    python benchmarks/digit_images.py --mld runs/mld_digits --n 600 --out benchmarks/results/digit_images_mld.json
    python benchmarks/digit_images.py --source uci --n 1797 --out benchmarks/results/digit_images_uci.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

RENDERINGS = ("mnist_png", "paper_scan", "photo", "canvas")


def render(kind: str, digit: np.ndarray, rng: np.random.Generator, path: Path) -> Path:
    """Write a 28 x 28 uint8 MNIST digit as a file of the given ``kind`` (see the module docstring)."""
    if kind == "mnist_png":
        Image.fromarray(digit).save(path := path.with_suffix(".png"))
        return path
    if kind == "paper_scan":
        ink = _enlarged(digit, 224)
        sheet = 0.92 - 0.85 * np.clip(ink, 0, 1) + rng.normal(0, 0.02, ink.shape)
        Image.fromarray(_u8(sheet)).save(path := path.with_suffix(".jpg"), quality=85)
        return path
    if kind == "photo":
        side = int(round(28 * rng.uniform(3, 7)))
        ink = _enlarged(digit, side)
        h, w = 240, 320
        light = 0.95 - 0.25 * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        sheet = light.copy()
        sheet[top:top + side, left:left + side] *= 1 - 0.8 * np.clip(ink, 0, 1)
        sheet += rng.normal(0, 0.02, sheet.shape)
        rgb = np.stack([sheet * 1.0, sheet * 0.97, sheet * 0.9], axis=-1)  # warm light
        Image.fromarray(_u8(rgb)).save(path := path.with_suffix(".jpg"), quality=80)
        return path
    if kind == "canvas":
        side = int(round(28 * rng.uniform(6, 9)))
        ink = _enlarged(digit, side)
        n = 280
        alpha = np.zeros((n, n))
        off = int(n * 0.2)
        top = int(np.clip((n - side) // 2 + rng.integers(-off, off + 1), 0, n - side)) if side < n else 0
        left = int(np.clip((n - side) // 2 + rng.integers(-off, off + 1), 0, n - side)) if side < n else 0
        crop = np.clip(ink, 0, 1)[:n - top, :n - left]
        alpha[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
        rgba = np.zeros((n, n, 4))
        rgba[..., 3] = alpha
        Image.fromarray(_u8(rgba), "RGBA").save(path := path.with_suffix(".png"))
        return path
    raise ValueError(kind)


def uci_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` UCI handwritten digits of scikit-learn (8 x 8, 0-16) as uint8 28 x 28 (bicubic), labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    digits = [np.asarray(Image.fromarray((a / 16 * 255).astype(np.uint8)).resize((28, 28), Image.Resampling.BICUBIC))
              for a in d.images[:n]]
    return np.stack(digits).astype(np.uint8), d.target[:n].astype(np.int64)


def _enlarged(digit: np.ndarray, side: int) -> np.ndarray:
    """A uint8 digit resized (bicubic) to ``side`` px, as ink in [0, 1]."""
    return np.clip(np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float64) / 255,
                   0, 1)


def _u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def read_whole(path: Path) -> np.ndarray:
    """The reader before: grey (alpha composited on black), the whole image resized to 28 x 28 by area
    averaging, inverted when its border is light."""
    with Image.open(path) as im:
        im = im.convert("RGBA")
        a = np.asarray(im, np.float64) / 255
    grey = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]) * a[..., 3]
    img = np.asarray(Image.fromarray(grey.astype(np.float32), "F").resize((28, 28), Image.Resampling.BOX), np.float32)
    img = np.clip(img, 0, 1)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return 1.0 - img if border.mean() > 0.5 else img


def readings(digits: np.ndarray, seed: int, height: int = 28, width: int = 28):
    """``(kind, reader, images (N, 1, H, W) float32)`` for every rendering of ``digits`` (uint8 28 x 28), read
    back by each reader (``whole``: the reader before; ``framed``: :func:`latentbridge.data.digits.read_digit_image`)."""
    from latentbridge.data.digits import read_digit_image

    with tempfile.TemporaryDirectory() as tmp:
        for kind in RENDERINGS:
            rng = np.random.default_rng([seed, RENDERINGS.index(kind)])
            files = [render(kind, d, rng, Path(tmp) / f"{kind}_{i}") for i, d in enumerate(digits)]
            for reader, read in (("whole", read_whole), ("framed", lambda p: read_digit_image(p, height, width))):
                yield kind, reader, np.stack([read(f) for f in files])[:, None].astype(np.float32)


def save(path: str, out: dict, script: str, argv) -> None:
    """``out`` with the command that made it, as JSON at ``path``."""
    out["command"] = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


def _row(rows: dict, kind: str, reader: str, correct: np.ndarray, what: str) -> None:
    rows[f"{kind}/{reader}"] = row = {what: float(correct.mean()), "ci95": bootstrap(correct)}
    print(f"{kind:11s} {reader:7s} {what} {correct.mean():.4f} [{row['ci95'][0]:.4f}, {row['ci95'][1]:.4f}]", flush=True)


def bootstrap(correct: np.ndarray, n: int = 1000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), (n, len(correct)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", default="../shared/data/mnist", help="folder of the MNIST *-ubyte.gz files")
    ap.add_argument("--n", type=int, default=2000, help="test digits (of the classifier's held-out split)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", choices=("mnist", "uci"), default="mnist",
                    help="mnist: held-out MNIST digits; uci: scikit-learn's UCI handwritten digits (43 writers)")
    ap.add_argument("--mld", default=None, help="a digits MLD run: judge its image -> audio route instead")
    ap.add_argument("--out", default="benchmarks/results/digit_images.json")
    args = ap.parse_args(argv)
    if args.mld:
        return main_mld(args, argv)
    import torch

    from latentbridge.data.digits import classifier_data
    from latentbridge.tasks.classify import load_classifier

    if not Path(args.mnist).is_dir():
        print(f"no MNIST folder at {args.mnist}", file=sys.stderr)
        return 2
    data = classifier_data("mnist", args.mnist, seed=0)
    model, info = load_classifier("mnist", data_root=args.mnist)
    x, y = data["x_test"][:args.n], data["y_test"][:args.n]
    digits = (x[:, 0] * 255 + 0.5).astype(np.uint8)
    if args.source == "uci":
        digits, y = uci_digits(args.n)
    rows, t0 = {}, time.time()
    for kind, reader, imgs in readings(digits, args.seed):
        with torch.no_grad():
            pred = np.asarray(model.predict(imgs))
        _row(rows, kind, reader, (pred == y).astype(np.float64), "accuracy")
    save(args.out, {"source": args.source, "n": int(len(y)), "classifier_test_accuracy": info.get("test_accuracy"),
                    "seconds": round(time.time() - t0, 1), "rows": rows}, "digit_images.py", argv)
    return 0


def main_mld(args, argv) -> int:
    """Image -> audio coherence of a digits MLD run on its test pairs' images, rendered and read back."""
    import torch

    from latentbridge.tasks.crossmodal import digit_judges
    from latentbridge.tasks.mld import generate, load_run, sampler_settings
    from latentbridge.tasks.mld_eval import held_out_digit_pairs

    saved, stages = load_run(args.mld)
    model, settings = saved.model.eval(), sampler_settings(saved.workflow)
    test, _ = held_out_digit_pairs(saved.workflow, args.n)
    judges = digit_judges(saved.workflow, saved.transform)
    digits, labels = (np.clip(test.image[:, 0], 0, 1) * 255 + 0.5).astype(np.uint8), test.label
    if args.source == "uci":
        digits, labels = uci_digits(args.n)
    rows, t0 = {}, time.time()
    h, w = test.image.shape[2:]
    for kind, reader, imgs in readings(digits, args.seed, h, w):
        with torch.no_grad():
            z = stages.encode("image", torch.from_numpy(imgs))
            audio = stages.decode("audio", generate(model, len(imgs), {"image": z}, settings=settings)["audio"])
        _row(rows, kind, reader, (np.asarray(judges.fsdd.predict(audio.numpy())) == labels).astype(np.float64),
             "coherence_image_to_audio")
    save(args.out, {"run": str(args.mld), "source": args.source, "n": int(len(labels)), "sampler": settings,
                    "seconds": round(time.time() - t0, 1), "rows": rows}, "digit_images.py", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
