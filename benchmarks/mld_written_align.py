"""Probe (not in the preset): does aligning the digits MLD's image encoder with written copies of its training
digits help digits from another source?

The image stage learnt MNIST's digits. Real handwriting from another source — the UCI optical digits bundled with
scikit-learn (43 writers, 8 x 8 px; see ``digit_images.py --source uci``) — is read by the MNIST classifier at
0.93 once framed, but drawn right by the digits MLD (image -> audio) only about 0.67 of the time. As the audio
stage's encoder was aligned with recorded copies of its clips (``first_stage.recorded``), this probe fine-tunes the
trained image stage's encoder (:func:`latentbridge.training.align.align_encoder`; the decoder and the denoiser
untouched) so that written copies of each training digit (:func:`latentbridge.data.digits.as_written_copies`: a coarser scan, blur, another
pen, slant and contrast, then framed as a user's digit is) encode to the digit's own latent, and measures image ->
audio coherence (FSDD classifier on the generated log-mel) on 600 MNIST test pairs and the 1,797 UCI digits, each
as the 28-px PNG and as a photo (``digit_images.render``), before and after; plus the MNIST classifier on the image
stage's reconstructions of them (what the latent still carries of the digit).

    python benchmarks/mld_written_align.py RUN --epochs 30 --out benchmarks/results/mld_written_align.json

RUN is changed only in memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digit_images import RENDERINGS, render, save, uci_digits  # noqa: E402

from latentbridge.data.digits import as_written_copies  # noqa: E402

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/mld_written_align.json")
    args = ap.parse_args(argv)
    from latentbridge.data.digits import images_to_float, read_digit_image, training_images
    from latentbridge.tasks.crossmodal import digit_judges
    from latentbridge.tasks.mld import generate, load_run, sampler_settings
    from latentbridge.tasks.mld_eval import held_out_digit_pairs
    from latentbridge.training.align import align_encoder

    saved, stages = load_run(args.run)
    cfg, model, settings = saved.workflow, saved.model.eval(), sampler_settings(saved.workflow)
    judges = digit_judges(cfg, saved.transform)
    test, _ = held_out_digit_pairs(cfg, 600)
    sources = {"mnist": ((np.clip(test.image[:, 0], 0, 1) * 255 + 0.5).astype(np.uint8), test.label),
               "uci": uci_digits(1797)}
    sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (digits, labels) in sources.items():
            for kind in ("mnist_png", "photo"):
                rng = np.random.default_rng([0, RENDERINGS.index(kind)])
                files = [render(kind, d, rng, Path(tmp) / f"{name}_{kind}_{i}") for i, d in enumerate(digits)]
                imgs = np.stack([read_digit_image(f, 28, 28) for f in files])[:, None].astype(np.float32)
                sets[f"{name}/{kind}"] = (imgs, labels)

    def measure() -> dict:
        res = {}
        for key, (imgs, labels) in sets.items():
            with torch.no_grad():
                z = stages.encode("image", torch.from_numpy(imgs))
                audio = stages.decode("audio", generate(model, len(imgs), {"image": z}, settings=settings)["audio"])
                rec = stages.decode("image", z).clamp(0, 1).numpy()
            res[key] = {"coherence_image_to_audio": float((np.asarray(judges.fsdd.predict(audio.numpy())) == labels).mean()),
                        "reconstruction_read_by_mnist_classifier": float((np.asarray(judges.mnist.predict(rec)) == labels).mean()),
                        "input_read_by_mnist_classifier": float((np.asarray(judges.mnist.predict(imgs)) == labels).mean())}
        return res

    before = measure()
    print("before", json.dumps(before), flush=True)
    images, _ = training_images(cfg.digits)
    x = images_to_float(images)
    t0 = time.time()
    copies = as_written_copies(x, args.copies, cfg.train.seed)
    encoder = stages.saved["image"].model
    for p in encoder.parameters():  # a loaded model is frozen
        p.requires_grad_(True)
    stats = align_encoder(encoder, x, copies, share=0.5, epochs=args.epochs, lr=3e-4, batch_size=64, seed=cfg.train.seed)
    stats["seconds"] = round(time.time() - t0, 1)
    after = measure()
    print("after", json.dumps(after), flush=True)
    save(args.out, {"run": args.run, "epochs": args.epochs, "copies": args.copies, "n_training_digits": int(len(x)),
                    "alignment": stats, "before": before, "after": after}, "mld_written_align.py", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
