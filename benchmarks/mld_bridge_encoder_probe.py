"""Does the multimodal VAE's vibration expert carry what the supervised network knows about the crack?

The MLD's crack masks follow the damaged-state IoU of the multimodal VAE it diffuses in (benchmarks/README.md
§10), below the supervised spectrogram → mask network's. This probe asks where that bound sits: starting from a
trained multimodal run (``configs/mmvae_bridge.yaml``, or the MLD preset's ``first_stage/multimodal``), it trains
the vibration → mask route of the VAE with the supervised network's own objective (the mask losses on the
vibration expert's posterior mode, labelled training windows, wave augmentation, batch 32, Adam), in one of
three ways:

* ``encoder``  the vibration encoder only, the mask decoder frozen (what a first stage whose vibration latent were
               tuned for the mask could give through the mask expert's decoder); ``--anchor`` adds the squared
               distance of the latents to the VAE's own (relative to their variance), keeping the latent in place
* ``decoder``  a new mask decoder (the same architecture, fresh weights) on the frozen vibration latent: how much
               of the crack the latent holds, read by a decoder trained for nothing else
* ``both``     the encoder and the mask decoder

Every ``--every`` epochs the route is read on the held-out states as ``evaluate`` reads a multimodal run
(threshold calibrated on the validation windows of the run's own split); ``--reference`` adds a supervised
run's figures read the same way.

    python benchmarks/mld_bridge_encoder_probe.py RUN_mmvae --reference RUN_spec2mask --modes encoder,decoder,both

Results: ``benchmarks/results/mld_bridge_encoder_probe<suffix>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

KEYS = ("mask_iou", "mask_damaged_iou", "mask_healthy_fpr", "crack_localisation_error_m")


def splits(cfg):
    import latentbridge.tasks.multimodal as mm

    data = mm.bridge_data(cfg)
    train_all, test = data.split(cfg.data.test_fraction, cfg.train.seed, test_ids=cfg.data.test_ids)
    train, val = train_all.split(cfg.data.val_fraction, cfg.train.seed + 1)
    return train, val, test


def read(model, cfg, val, test) -> dict:
    """Held-out figures of the vibration → mask route, threshold calibrated on the validation windows."""
    import latentbridge.tasks.multimodal as mm
    from latentbridge.metrics.segmentation import mask_metrics

    model.eval()
    threshold = mm.calibrate_mask_threshold(model, val)["threshold"]
    out = {"threshold": threshold}
    for name, d in (("test", test), ("val", val)):
        lab = np.asarray(d.has_mask, dtype=bool)
        m = mask_metrics(mm.predict(model, d)["mask_prob"][lab], d.masks[lab], threshold,
                         mm.span_of(cfg, cfg.data.root))
        out.update({(k if name == "test" else f"val_{k}"): round(float(m[k]), 4) for k in KEYS})
    return out


def train_route(run: Path, mode: str, epochs: int, lr: float, anchor: float, every: int, seed: int) -> list[dict]:
    import latentbridge.tasks.multimodal as mm
    from latentbridge.models.hub import load_model
    from latentbridge.nn.conv import ConvDecoder
    from latentbridge.training.fit import DictDataset

    torch.manual_seed(seed)
    saved = load_model(run)
    cfg, model = saved.workflow, saved.model.eval()
    train, val, test = splits(cfg)
    rows = [{"mode": mode, "epoch": 0, **read(model, cfg, val, test)}]
    t = mm.tensors(train)
    with torch.no_grad():
        z0 = torch.cat([model.experts({"wave": w})["spec"].mean for w in t["wave"].split(64)])
    scale = z0.var(dim=0).mean().clamp_min(1e-12)
    if mode == "decoder":
        k = model.kwargs
        model.mask_decoder = ConvDecoder(model.latent_dim, list(k["mask_channels"]), tuple(k["mask_hw"]), 1)
    params = {"encoder": list(model.spec_encoder.parameters()), "decoder": list(model.mask_decoder.parameters()),
              "both": list(model.spec_encoder.parameters()) + list(model.mask_decoder.parameters())}[mode]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    loader = torch.utils.data.DataLoader(DictDataset(**t, z0=z0), batch_size=32, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    for epoch in range(1, epochs + 1):
        model.train()
        for b in loader:
            z = model.experts({"wave": model.wave_augment(b["wave"])})["spec"].mean
            loss = (model.mask_loss_of(z, b) * b["has_mask"].float()).mean()
            if anchor:
                loss = loss + anchor * (z - b["z0"]).pow(2).mean() / scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch % every == 0 or epoch == epochs:
            rows.append({"mode": mode, "epoch": epoch, **read(model, cfg, val, test)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a trained multimodal run (configs/mmvae_bridge.yaml)")
    ap.add_argument("--reference", help="a supervised run (configs/spec2mask_bridge.yaml) on the same data and seed")
    ap.add_argument("--modes", default="encoder,decoder,both")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--anchor", type=float, default=0.0)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--suffix", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from latentbridge.models.hub import load_model

    out: dict = {"run": a.run, "settings": {k: getattr(a, k) for k in ("epochs", "lr", "anchor", "seed")}, "rows": []}
    if a.reference:
        saved = load_model(a.reference)
        _, val, test = splits(saved.workflow)
        out["reference"] = {"run": a.reference, **read(saved.model, saved.workflow, val, test)}
        print("reference", out["reference"], flush=True)
    for mode in a.modes.split(","):
        out["rows"] += train_route(Path(a.run), mode, a.epochs, a.lr, a.anchor, a.every, a.seed)
    write_results(f"mld_bridge_encoder_probe{a.suffix}", out)


if __name__ == "__main__":
    main()
