"""Multimodal VAE: every fusion trains with missing masks, encodes any subset, saves and loads."""

import numpy as np
import pytest
import torch

from latentbridge.config import config_to_dict, load_config, transform_spec
from latentbridge.models.hub import load_model, save_model
from latentbridge.models.multimodal import (FUSIONS, MultimodalVAE, Spec2Mask, fuse_for_inference, fusion_objective,
                                            product_of_experts)
from latentbridge.models.outputs import DiagonalGaussian

C, T = 3, 256


def make(fusion="jsd", cls=MultimodalVAE, **kw):
    torch.manual_seed(0)
    return cls(n_channels=C, n_samples=T, sample_rate=100.0, n_fft=32, hop_length=8, mask_hw=(8, 24),
               latent_dim=4, channels=[8, 16], mask_channels=[4, 8], fusion=fusion, **kw)


def batch(b=6, with_mask=(True, True, False, True, False, True)):
    g = torch.Generator().manual_seed(1)
    t = torch.arange(T) / 100.0
    wave = torch.sin(2 * torch.pi * 7 * t) * torch.rand(b, C, 1, generator=g) + 0.1 * torch.randn(b, C, T, generator=g)
    mask = torch.zeros(b, 1, 8, 24)
    mask[::2, :, 4:, 10:12] = 1.0
    has = torch.tensor(with_mask[:b])
    return {"wave": wave, "mask": mask, "has_mask": has, "extent": mask.mean(dim=(1, 2, 3))}


def test_product_of_experts_closed_form():
    a = DiagonalGaussian(torch.tensor([[1.0]]), torch.log(torch.tensor([[2.0]])))
    b = DiagonalGaussian(torch.tensor([[3.0]]), torch.log(torch.tensor([[1.0]])))
    on = torch.ones(1)
    q = product_of_experts([a, b], [on, on], prior=False)
    # precisions 0.5 + 1 = 1.5; mean = (0.5*1 + 1*3) / 1.5
    torch.testing.assert_close(q.var, torch.tensor([[1 / 1.5]]))
    torch.testing.assert_close(q.mean, torch.tensor([[3.5 / 1.5]]))
    q = product_of_experts([a, b], [on, torch.zeros(1)], prior=True)  # b switched off, prior on
    torch.testing.assert_close(q.var, torch.tensor([[1 / 1.5]]))
    torch.testing.assert_close(q.mean, torch.tensor([[0.5 / 1.5]]))

    off = product_of_experts([a, b], [torch.zeros(1), torch.zeros(1)], prior=False)  # no expert: the standard normal
    torch.testing.assert_close((off.mean, off.var), (torch.zeros(1, 1), torch.ones(1, 1)))


def test_the_jsd_regulariser_is_zero_where_every_expert_is_the_prior():
    """mmJSD's divergence to the dynamic prior (the experts' and the prior's weighted geometric mean) is a
    Jensen-Shannon divergence: 0 between identical distributions (the unweighted product read 0.45 nats a dim)."""
    standard = DiagonalGaussian(torch.zeros(3, 5), torch.zeros(3, 5))
    on = {"spec": torch.ones(3), "mask": torch.tensor([1.0, 0.0, 1.0])}
    _, jsd = fusion_objective("jsd", {"spec": standard, "mask": standard}, on, lambda *a: torch.zeros(3), 1.0)
    torch.testing.assert_close(jsd, torch.zeros(3))
    # both experts N(m, 1): the geometric mean of them and the prior, each of weight 1/3, is N(2m/3, 1); the
    # divergence is the mean of the three KLs to it, (m/3)^2 / 2 twice and (2m/3)^2 / 2, over 3: m^2 / 9
    m = 0.6
    ex = {"spec": DiagonalGaussian(torch.full((1, 1), m), torch.zeros(1, 1)),
          "mask": DiagonalGaussian(torch.full((1, 1), m), torch.zeros(1, 1))}
    _, jsd = fusion_objective("jsd", ex, {"spec": torch.ones(1), "mask": torch.ones(1)}, lambda *a: torch.zeros(1), 1.0)
    expected = m ** 2 / 9
    torch.testing.assert_close(jsd, torch.tensor([expected]))
    # one modality's posterior is its expert, as the decoders learnt from it (with the prior: the mean halved), also
    # where a second is asked for but missing (a window without its mask)
    alone = fuse_for_inference("jsd", {"spec": ex["spec"]}, {"spec": torch.ones(1)})
    torch.testing.assert_close((alone.mean, alone.var), (ex["spec"].mean, ex["spec"].var))
    missing = fuse_for_inference("jsd", ex, {"spec": torch.ones(1), "mask": torch.zeros(1)})
    torch.testing.assert_close((missing.mean, missing.var), (ex["spec"].mean, ex["spec"].var))
    both = fuse_for_inference("jsd", ex, {"spec": torch.ones(1), "mask": torch.ones(1)})
    torch.testing.assert_close(both.mean, torch.full((1, 1), 2 * m / 3))  # the dynamic prior


def test_a_missing_mask_leaves_the_decoders_batchnorm_statistics_sane():
    """MoPoE's subset {mask} of a window without a mask is weighted 0, but decoded in the batch: its sample must be
    of the prior's scale (an empty product, N(0, 1e8), moved the decoders' running variance from ~1 to ~1e5)."""
    model = make("mopoe")
    data = batch()
    with torch.no_grad():
        model.codec.normalizer.fit(model.codec.analyse(data["wave"])[0])
    model.train()
    model.loss(data, beta=1.0)
    running = [m.running_var.max().item() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert running and max(running) < 100

@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusion_contract(fusion, tmp_path):
    model = make(fusion)
    data = batch()
    with torch.no_grad():
        logmag, _ = model.codec.analyse(data["wave"])
        model.codec.normalizer.fit(logmag)
    model.train()
    loss, parts = model.loss(data, beta=0.5)
    assert loss.shape == (6,) and torch.isfinite(loss).all()
    assert {"kl", "damage_mse"} <= set(parts)
    assert all(v.shape == (6,) for v in parts.values())
    # damage supervision is masked where there is no mask
    assert (parts["damage_mse"][~data["has_mask"]] == 0).all()
    loss.mean().backward()
    assert model.mask_encoder.fc.weight.grad.abs().sum() > 0
    assert model.spec_encoder.fc.weight.grad.abs().sum() > 0
    model.eval()
    for use in [("spec",), ("mask",), ("spec", "mask")]:
        q = model.infer(data, use=use)
        assert q.mean.shape == (6, 4)
    pred = model.predict({"wave": data["wave"]})
    assert pred["mask_prob"].shape == (6, 1, 8, 24)
    assert pred["wave"].shape == (6, C, T) and pred["extent"].shape == (6,)
    assert ((pred["mask_prob"] >= 0) & (pred["mask_prob"] <= 1)).all()
    cfg = load_config(None, ["task=multimodal", f"model.fusion={fusion}"])
    save_model(tmp_path / "m", model, config=config_to_dict(cfg), transform=transform_spec(cfg, sample_rate=100.0,
                                                                                          n_channels=C), card="# m\n")
    loaded = load_model(tmp_path / "m").model
    torch.testing.assert_close(loaded.predict({"wave": data["wave"]})["mask_prob"], pred["mask_prob"])


def test_all_masks_missing_trains_on_vibration_only():
    model = make("poe")
    data = batch(with_mask=(False,) * 6)
    loss, parts = model.loss(data, beta=1.0)
    assert torch.isfinite(loss).all()
    assert (parts["damage_mse"] == 0).all()


def test_training_learns_to_predict_masks_from_vibration():
    """Two damage states with different vibration: after training, the vibration alone tells the mask."""
    torch.manual_seed(0)
    model = make("jsd", loss_weights={"phase_gradient": 0.0, "phase_laplacian": 0.0, "waveform_si_l1": 0.0,
                                      "mrstft": 0.0})
    g = torch.Generator().manual_seed(2)
    t = torch.arange(T) / 100.0
    freq = torch.tensor([5.0, 15.0]).repeat(16)  # state 0: 5 Hz, state 1: 15 Hz
    wave = torch.sin(2 * torch.pi * freq[:, None, None] * t) + 0.2 * torch.randn(32, C, T, generator=g)
    mask = torch.zeros(32, 1, 8, 24)
    mask[1::2, :, 3:, 8:14] = 1.0
    data = {"wave": wave, "mask": mask, "has_mask": torch.ones(32, dtype=torch.bool),
            "extent": mask.mean(dim=(1, 2, 3))}
    with torch.no_grad():
        model.codec.normalizer.fit(model.codec.analyse(wave)[0])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        loss, _ = model.loss(data, beta=0.01)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    model.eval()
    prob = model.predict({"wave": wave})["mask_prob"]
    inter = ((prob > 0.5) & (mask > 0.5)).sum()
    union = ((prob > 0.5) | (mask > 0.5)).sum()
    assert (inter / union).item() > 0.7


def test_supervised_reference():
    model = make(cls=Spec2Mask)
    data = batch()
    loss, parts = model.loss(data)
    assert loss.shape == (6,)
    assert (parts["mask"][~data["has_mask"]] == 0).all()
    q = model.infer(data)
    assert torch.allclose(q.std, torch.zeros_like(q.std), atol=1e-6)


def test_unknown_fusion():
    with pytest.raises(ValueError, match="fusion"):
        make("concat")


def test_mask_threshold_calibration_reaches_below_the_old_grid():
    """Crack probabilities that stay low (a generative model's mean over samples) are calibrated where their
    pooled IoU is best, 0.02 here, not cut off at 0.05; confident ones keep a high threshold."""
    from latentbridge.metrics.segmentation import THRESHOLDS
    from latentbridge.tasks.multimodal import best_threshold

    rng = np.random.default_rng(0)
    target = np.zeros((20, 1, 8, 32), np.float32)
    target[:10, :, 4:, 10:13] = 1.0  # ten damaged windows, ten healthy
    faint = np.where(target > 0, rng.uniform(0.025, 0.045, target.shape), rng.uniform(0.0, 0.015, target.shape))
    faint[10:, :, :2, :3] = 0.035  # faint false alarms on healthy windows: 0.02 keeps every crack pixel and these
    out = best_threshold(faint.astype(np.float32), target)
    assert min(THRESHOLDS) == 0.01 and out["threshold"] == 0.02
    assert out["val_micro_iou_by_threshold"][0.02] > out["val_micro_iou_by_threshold"][0.05]
    sure = np.where(target > 0, 0.9, 0.3).astype(np.float32)
    assert best_threshold(sure, target)["threshold"] == 0.5


def test_decoded_spectrogram_of_half_precision_synthesises_in_float32():
    """Under bf16-mixed training on a GPU the decoder's magnitude and phase are bfloat16; the ISTFT of
    the waveform loss takes neither (complex bfloat16 does not exist): it runs in float32."""
    model = make("jsd")
    mag, phase = model.codec.analyse(batch()["wave"])
    mag = torch.exp(mag)
    ref = model.codec.synthesise(mag, phase)
    low = model.codec.synthesise(mag.bfloat16(), phase.bfloat16())
    assert low.dtype == torch.float32 and low.shape == ref.shape == (6, C, T)
    rel = float((low - ref).norm() / ref.norm())
    assert rel < 0.05, rel  # bfloat16's 8-bit mantissa, nothing worse


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_a_training_step_under_cuda_like_bf16_autocast(fusion, cuda_like_autocast):
    """The GPU test below on the CPU, with autocast as strict as CUDA's (the waveform loss took the ISTFT and
    torch.polar of bfloat16 decoder output: a crash on a GPU, quietly upcast by CPU autocast): every fusion's loss
    finite and float32, gradients reaching the experts."""
    model = make(fusion).train()
    with torch.autocast(cuda_like_autocast, dtype=torch.bfloat16):
        loss, parts = model.loss(batch(), beta=0.01)
    loss.mean().backward()
    assert torch.isfinite(loss).all() and loss.dtype == torch.float32
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(torch.isfinite(g).all()) for g in grads) > 0.9 * len(grads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_training_step_under_bf16_autocast_on_the_gpu():
    """What ``--accelerator gpu --precision bf16-mixed`` runs: the loss (waveform terms through the ISTFT
    included) is finite and its gradients reach every expert."""
    model = make("jsd").cuda().train()
    data = {k: v.cuda() for k, v in batch().items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, parts = model.loss(data, beta=0.01)
    loss.mean().backward()
    assert torch.isfinite(loss).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
    assert sum(g is not None for g in grads) > 0.9 * len(grads)


@pytest.mark.parametrize("fusion, said", [("jsd", True), ("moe", False)])
def test_a_jsd_folder_saved_before_its_fix_is_said_so(fusion, said, tmp_path, caplog):
    """mmJSD's posterior of one modality was halved by the prior before 2026-12-07: an older folder reads otherwise."""
    import logging

    from latentbridge.models.hub import update_info

    model = make(fusion)
    cfg = load_config(None, ["task=multimodal", f"model.fusion={fusion}"])
    save_model(tmp_path / "m", model, config=config_to_dict(cfg),
               transform=transform_spec(cfg, sample_rate=100.0, n_channels=C), card="# m\n")
    with caplog.at_level(logging.WARNING):
        load_model(tmp_path / "m")
    assert "jsd fusion" not in caplog.text  # saved now
    update_info(tmp_path / "m", {"created_utc": "2026-12-05T10:00:00+00:00"})
    with caplog.at_level(logging.WARNING):
        load_model(tmp_path / "m")
    assert ("trained with the jsd fusion before 2026-12-07" in caplog.text) == said, caplog.text
