"""Aligning a trained encoder with corrupted copies of its training examples.

A first stage learns its latents from clean examples; a user's input arrives as a recorder hands it
over (quiet around the word, background noise, another level), and its latent lands away from the
latents the diffusion model learnt. :func:`align_encoder` fine-tunes only the encoder so that each
copy encodes to the latent the trained encoder gives the example itself (a distillation of the
encoder into itself), with the clean examples kept in the mix so their latents stay put. The decoder
is never touched, so what the stage generates stays as it was.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from latentbridge.utils import batched

log = logging.getLogger(__name__)


def _latent(model, x: torch.Tensor) -> torch.Tensor:
    """The posterior mode of ``x`` (the first-stage protocol's ``encode``), flattened."""
    return model.encode(x).mode().flatten(1)


def align_encoder(model, clean: np.ndarray, copies: np.ndarray, *, share: float, epochs: int, lr: float,
                  batch_size: int, seed: int) -> dict:
    """Fine-tune the encoder of ``model`` (a model with the first-stage ``encode``) so that the
    copies ``(K, N, ...)`` of the examples ``clean`` ``(N, ...)`` encode to the examples' own latents
    (posterior modes under the model as it was trained). Each training example is one of its copies
    with probability ``share`` and the example itself otherwise
    (:class:`latentbridge.data.digits.RecordedClips`); the loss is the squared latent distance relative
    to the latents' mean variance. Only the parameters the posterior depends on get gradients (Adam
    skips the rest), so the decoder is unchanged. The model is left in eval mode.

    Returns ``{"copy_error_before", "copy_error_after", "clean_shift"}``: the copies' mean squared
    latent distance to their targets before and after, and the clean examples' own after (all relative
    to the latents' variance)."""
    from latentbridge.data.digits import RecordedClips

    if copies.ndim != clean.ndim + 1 or copies.shape[1:] != clean.shape:
        raise ValueError(f"copies {copies.shape} are not (K, *{clean.shape})")
    model.eval()  # deterministic encoder (no dropout); the alignment changes weights, not running statistics
    target = batched(lambda x: _latent(model, x), clean)  # batched runs without gradients
    scale = target.var(dim=0).mean().clamp_min(1e-12)

    def error(x: np.ndarray) -> float:
        return float(((batched(lambda b: _latent(model, b), x) - target).pow(2).mean(dim=1) / scale).mean())

    before = float(np.mean([error(c) for c in copies]))
    data = RecordedClips(clean, copies, share, seed, targets=target.numpy())
    loader = torch.utils.data.DataLoader(data, batch_size=int(batch_size), shuffle=True, drop_last=len(data) > batch_size,
                                         generator=torch.Generator().manual_seed(int(seed)))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(lr))
    for epoch in range(int(epochs)):
        total, n = 0.0, 0
        for batch in loader:
            loss = (_latent(model, batch["x"]) - batch["target"]).pow(2).mean() / scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(batch["x"]), n + len(batch["x"])
        log.info("encoder alignment epoch %d/%d: latent error %.4f", epoch + 1, epochs, total / max(n, 1))
    after = float(np.mean([error(c) for c in copies]))
    return {"copy_error_before": round(before, 5), "copy_error_after": round(after, 5),
            "clean_shift": round(error(clean), 5)}
