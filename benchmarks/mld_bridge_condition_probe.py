"""A condition encoder trained for the mask beside the diffusion: does it lift the MLD to the supervised network?

The MLD's crack masks from vibration follow what the multimodal VAE's vibration latent holds about the crack, and that
latent holds less than the supervised spectrogram → mask network's (``mld_bridge_encoder_probe.py``, README §10). This
probe gives the diffusion the supervised network's knowledge as a condition, over a trained multimodal first stage
(``RUN_mmvae``, e.g. the MLD preset's first stage trained with ``configs/mmvae_bridge.yaml -o beta.value=0.001``) and a
trained supervised run of the same seed (``configs/spec2mask_bridge.yaml``), each arm the MLD preset trained and
evaluated as ``latentbridge train`` / ``evaluate`` do (the task's own ``fit`` and ``evaluate``), with the first stages
swapped in memory:

* ``base``   the preset: the VAE's vibration and mask latents;
* ``cond``   the vibration latent widened with the supervised network's bottleneck (32 entries, std-scaled on the
             labelled training windows): a frozen condition encoder trained for the mask; the vibration is still
             decoded from the VAE's part, the mask latent is the VAE's;
* ``space``  as ``cond``, and the mask latent moved into the supervised network's own bottleneck: a mask encoder
             (the VAE's mask-encoder architecture, fresh weights, 60 epochs, Adam 2e-3, batch 32) trained so that the
             supervised network's frozen mask decoder reconstructs the labelled training masks; masks are decoded by
             that decoder, so the diffusion's condition and target live in one space.

    python benchmarks/mld_bridge_condition_probe.py RUN_mmvae RUN_spec2mask --data DATA --seed S --arms base,cond,space \\
        --work W --suffix _seedS

Results: ``benchmarks/results/mld_bridge_condition_probe<suffix>.json`` (the reference row: the supervised run as
``latentbridge evaluate`` reads it, when ``--reference-metrics`` names its ``metrics.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

KEYS = ("mask_iou", "mask_damaged_iou", "mask_healthy_fpr", "crack_localisation_error_m", "crack_missed_rate",
        "crack_false_rate", "mask_threshold", "psd_distance_db")
BOTTLENECK = 32


class _Mode:
    def __init__(self, z):
        self.z = z

    def mode(self):
        return self.z


class WithCondition:
    """The VAE's vibration stage, its latent widened with the supervised encoder's bottleneck."""

    def __init__(self, stage, supervised, scale: float):
        self.stage, self.supervised, self.scale = stage, supervised, scale
        self.d = int(np.prod(stage.latent_shape))
        self.latent_shape, self.latent_scale = (self.d + BOTTLENECK,), torch.tensor(1.0)

    def encode(self, x):
        za = self.stage.encode(x).mode().flatten(1) / self.stage.latent_scale
        return _Mode(torch.cat([za, self.supervised.experts({"wave": x})["spec"].mean / self.scale], 1))

    def decode(self, z):
        return self.stage.decode(z[:, :self.d] * self.stage.latent_scale)


class SupervisedSpaceMask:
    """Masks ↔ the supervised network's bottleneck: a trained mask encoder, the network's frozen mask decoder."""

    def __init__(self, encoder, supervised, scale: float):
        self.encoder, self.supervised = encoder, supervised
        self.latent_shape, self.latent_scale = (BOTTLENECK,), torch.tensor(scale)

    def encode(self, x):
        return _Mode(self.encoder(torch.as_tensor(x) * 2.0 - 1.0)[:, :BOTTLENECK])

    def decode(self, z):
        return torch.sigmoid(self.supervised.decode_mask(z))


def train_mask_encoder(supervised, masks: torch.Tensor, val_masks: torch.Tensor, seed: int, epochs: int = 60):
    torch.manual_seed(seed)
    enc = copy.deepcopy(supervised.mask_encoder).train()
    for mod in enc.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    for p in enc.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(enc.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(masks), generator=g)
        for i in range(0, len(masks), 32):
            b = masks[perm[i:i + 32]]
            loss = supervised.mask_loss(supervised.decode_mask(enc(b * 2 - 1)[:, :BOTTLENECK]), b).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        z = enc(masks * 2 - 1)[:, :BOTTLENECK]
        rec = torch.sigmoid(supervised.decode_mask(enc(val_masks * 2 - 1)[:, :BOTTLENECK])) > 0.5
    truth = val_masks > 0.5
    inter, union = (rec & truth).flatten(1).sum(1).float(), (rec | truth).flatten(1).sum(1).float()
    damaged = truth.flatten(1).any(1)
    return enc, float(z.std()), float((inter / union.clamp_min(1))[damaged].mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mmvae", type=Path)
    ap.add_argument("supervised", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--arms", default="base,cond,space")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--reference-metrics", type=Path, default=None)
    ap.add_argument("--suffix", default="")
    args = ap.parse_args(argv)

    import latentbridge.tasks.mld as mld
    from latentbridge.config.workflows import load_config
    from latentbridge.models.hub import load_model
    from latentbridge.tasks import mld_eval

    supervised = load_model(args.supervised).model.eval()
    for p in supervised.parameters():
        p.requires_grad_(False)
    original, extra_info = mld.load_stages, {}
    rows = []
    for arm in args.arms.split(","):
        cache: dict = {}

        def swapped(folder, modalities, arm=arm, cache=cache):
            st = original(folder, modalities)
            if arm == "base":
                return st
            if not cache:
                train, val, _ = mld.bridge_splits(st, args.data)
                lab_t, lab_v = np.asarray(train.has_mask, bool), np.asarray(val.has_mask, bool)
                with torch.no_grad():
                    zb = supervised.experts({"wave": torch.as_tensor(train.waves[lab_t])})["spec"].mean
                cache["scale"] = float(zb.std())
                if arm == "space":
                    enc, scale, ae_iou = train_mask_encoder(supervised, torch.as_tensor(train.masks[lab_t]).float(),
                                                            torch.as_tensor(val.masks[lab_v]).float(), args.seed)
                    cache["mask"] = SupervisedSpaceMask(enc, supervised, scale)
                    extra_info["space_mask_autoencoding_val_damaged_iou"] = round(ae_iou, 4)
            st.views["spec"] = WithCondition(st.views["spec"], supervised, cache["scale"])
            if arm == "space":
                st.views["mask"] = cache["mask"]
            return st

        mld.load_stages = swapped
        try:
            cfg = load_config("configs/mld_bridge.yaml", [f"data.root={args.data}", f"first_stage.run={args.mmvae}",
                                                          f"train.seed={args.seed}", "train.progress_bar=false"])
            out = args.work / f"{arm}_seed{args.seed}"
            t0 = time.time()
            mld.fit(cfg, out, force=True)
            fit_s = time.time() - t0
            m = mld_eval.evaluate(out).metrics
        finally:
            mld.load_stages = original
        rows.append({"arm": arm, "seed": args.seed, "fit_s": round(fit_s, 1), **{k: m.get(k) for k in KEYS}})
        print(json.dumps(rows[-1]), flush=True)
    reference = None
    if args.reference_metrics:
        ref = json.loads(args.reference_metrics.read_text())
        reference = {k: ref.get(k) for k in KEYS}
    write_results(f"mld_bridge_condition_probe{args.suffix}", {
        "rows": rows,
        "reference": reference, **extra_info})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
