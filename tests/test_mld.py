"""Multimodal latent diffusion: multi-time masking, conditional sampling (shapes, determinism, a
clean modality held exactly), a denoiser that learns a cross-modal relation, the set measures it
is read with, and train → sample → evaluate through the command line on tiny bridge and digit data."""

import json
import logging
import re
import shutil

import numpy as np
import pytest
import torch

from conftest import FSDD, REPO
from latentbridge.cli import main
from latentbridge.models.mld import CLEAN, NULL, LatentDenoiser

pytestmark = pytest.mark.usefixtures("one_torch_thread")


PROCESS = {"schedule": "cosine", "prediction": "v_prediction", "train_timesteps": 100, "clip_sample": None}


def _model(**kw):
    torch.manual_seed(0)
    return LatentDenoiser(("a", "b"), (3, 2), PROCESS, hidden=32, blocks=2, time_dim=8, **kw)


@pytest.mark.parametrize("shares, guidance, said", [
    (dict(condition_share=0.0), 1.0, "trained on joint samples alone"),
    (dict(condition_share=0.5, null_share=0.0), {"b": 3.0}, "null condition, which it never learnt"),
    (dict(condition_share=0.5, null_share=0.0), 1.0, None),
    (dict(condition_share=0.5, null_share=0.1), 3.0, None)])
def test_conditional_samples_of_states_never_learnt_are_said(shares, guidance, said, caplog):
    """A model that never held a modality clean (condition share 0), or never nulled one (null share 0) sampled at
    guidance other than 1, drew conditional samples without a word (its card even gave the config's share)."""
    from latentbridge.tasks.mld import generate

    m = _model(**shares)
    settings = dict(seed=0, guidance=guidance, scheduler="ddim", steps=2, eta=0.0)
    with caplog.at_level(logging.WARNING):
        out = generate(m, 4, {"a": torch.zeros(4, 3)}, settings=settings)
        generate(m, 4, {"a": torch.zeros(4, 3)}, settings=settings)  # (said once)
    assert out["b"].shape == (4, 2) and torch.equal(out["a"], torch.zeros(4, 3))
    assert caplog.text.count(said) == 1 if said else not caplog.text, caplog.text


def test_training_states_follow_the_shares():
    m = _model(condition_share=0.5, null_share=0.25)
    times = m.draw_states(20000, torch.Generator().manual_seed(0))
    noised = times >= 0
    assert noised.any(dim=1).all()  # never every modality clean or null
    conditioned = (~noised).any(dim=1)
    assert conditioned.float().mean().item() == pytest.approx(0.5, abs=0.02)
    null = (times == NULL).sum().item() / (~noised).sum().item()
    assert null == pytest.approx(0.25, abs=0.02)
    joint = times[~conditioned]
    assert (joint[:, 0] == joint[:, 1]).all()  # jointly noised modalities share the timestep
    assert not (_model(condition_share=0.0).draw_states(500) < 0).any()


def test_loss_scores_only_the_noised_modalities():
    m = _model(condition_share=0.9)
    m.train()
    z = torch.randn(64, 5)
    torch.manual_seed(3)
    loss, parts = m.loss({"z": z})
    assert loss.shape == (64,) and torch.isfinite(loss).all()
    torch.manual_seed(3)
    times = m.draw_states(64)
    for i, name in enumerate(("a", "b")):
        assert (parts[f"mse_{name}"][times[:, i] < 0] == 0).all()
        assert (parts[f"mse_{name}"][times[:, i] >= 0] > 0).all()


def test_a_training_step_under_cuda_like_bf16_autocast(cuda_like_autocast):
    """``--precision bf16-mixed`` (CPU autocast as strict as CUDA's): a finite loss and gradients."""
    m = _model(condition_share=0.5).train()
    torch.manual_seed(3)
    with torch.autocast(cuda_like_autocast, dtype=torch.bfloat16):
        loss, _ = m.loss({"z": torch.randn(64, 5)})
    assert loss.shape == (64,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def _fit(m, z, steps: int = 400):
    """Adam (3e-3) on batches of 256 rows of ``z``, seeded by the caller's torch seed."""
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for _ in range(steps):
        loss, _ = m.loss({"z": z[torch.randint(0, len(z), (256,))]})
        opt.zero_grad()
        loss.mean().backward()
        opt.step()


class _Spy(LatentDenoiser):
    def forward(self, z, times):
        self.calls.append((z.clone(), times.clone()))
        return super().forward(z, times)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_a_clean_modality_stays_exactly_unchanged_through_sampling(guidance):
    torch.manual_seed(0)
    m = _Spy(("a", "b"), (3, 2), PROCESS, hidden=32, blocks=2, time_dim=8)
    m.calls = []
    cond = torch.randn(4, 3)
    out = m.generate(4, {"a": cond}, guidance=guidance, steps=6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out["a"], cond) and out["b"].shape == (4, 2)
    assert len(m.calls) == 6
    for z, times in m.calls:  # every step saw the condition exactly, marked clean (and nulled for guidance)
        assert torch.equal(z[:4, :3], cond) and (times[:4, 0] == CLEAN).all() and (times[:4, 1] >= 0).all()
        if guidance != 1.0:
            assert len(z) == 8 and (times[4:, 0] == NULL).all()
    # the model itself zeroes a nulled modality: its value cannot leak into the unconditional prediction
    z = torch.randn(2, 5)
    t = torch.tensor([[NULL, 10], [NULL, 10]])
    z2 = z.clone()
    z2[:, :3] += 5.0
    torch.testing.assert_close(LatentDenoiser.forward(m, z, t), LatentDenoiser.forward(m, z2, t))


def test_conditional_sampling_shapes_and_determinism():
    m = _model()
    cond = {"b": torch.randn(5, 2)}
    for scheduler in ("ddim", "dpm", "ddpm"):
        a = m.generate(5, cond, scheduler=scheduler, steps=4, generator=torch.Generator().manual_seed(7))
        b = m.generate(5, cond, scheduler=scheduler, steps=4, generator=torch.Generator().manual_seed(7))
        c = m.generate(5, cond, scheduler=scheduler, steps=4, generator=torch.Generator().manual_seed(8))
        assert a["a"].shape == (5, 3) and torch.equal(a["a"], b["a"]) and not torch.equal(a["a"], c["a"])
    state = torch.get_rng_state()
    joint = m.generate(3, None, steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert joint["a"].shape == (3, 3) and joint["b"].shape == (3, 2)
    # guidance 0 is the unconditional prediction: the condition's value does not matter
    u1 = m.generate(5, cond, guidance=0.0, steps=4, generator=torch.Generator().manual_seed(7))
    u2 = m.generate(5, {"b": cond["b"] + 3}, guidance=0.0, steps=4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(u1["a"], u2["a"])
    for bad in ({"c": torch.zeros(5, 2)}, {"b": torch.zeros(4, 2)}, {"a": torch.zeros(5, 3), "b": torch.zeros(5, 2)}):
        with pytest.raises(ValueError):
            m.generate(5, bad, steps=2)


def test_guidance_per_generated_modality():
    """With three modalities and one condition, each generated modality's latents are mixed with its own
    strength: a mapping equal to one number gives that number's samples exactly; different strengths give
    each modality the samples of its own strength (the mix is per entry, the network is the same)."""
    torch.manual_seed(0)
    m = LatentDenoiser(("a", "b", "c"), (3, 2, 2), PROCESS, hidden=32, blocks=2, time_dim=8)
    cond = {"a": torch.randn(6, 3)}

    def fn_out(guidance):
        fn, targets = m.denoiser(6, cond, guidance)
        assert targets == ["b", "c"]
        return fn(torch.randn(6, 4, generator=torch.Generator().manual_seed(3)), torch.tensor(40))

    two, five = fn_out(2.0), fn_out(5.0)
    torch.testing.assert_close(fn_out({"b": 2.0, "c": 2.0}), two)
    mixed = fn_out({"b": 2.0, "c": 5.0})
    torch.testing.assert_close(mixed[:, :2], two[:, :2])
    torch.testing.assert_close(mixed[:, 2:], five[:, 2:])
    assert not torch.allclose(two[:, 2:], five[:, 2:])
    torch.testing.assert_close(fn_out({"b": 2.0}), torch.cat([two[:, :2], fn_out(1.0)[:, 2:]], dim=1))
    out = m.generate(6, cond, guidance={"b": 2.0, "c": 5.0}, steps=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out["a"], cond["a"]) and out["b"].shape == (6, 2) and out["c"].shape == (6, 2)


def test_guidance_given_per_modality_on_the_command_line():
    from latentbridge.errors import LatentbridgeError
    from latentbridge.sampling_args import resolve_guidance

    mods = ("audio", "image")
    assert resolve_guidance("3", 4.0, mods) == 3.0
    assert resolve_guidance("audio=8, image=4", 1.0, mods) == {"audio": 8.0, "image": 4.0}
    # a modality left out keeps the run's strength; equal strengths collapse to one number
    assert resolve_guidance("audio=8", 4.0, mods) == {"audio": 8.0, "image": 4.0}
    assert resolve_guidance("audio=6", {"audio": 8.0, "image": 6.0}, mods) == 6.0
    assert resolve_guidance({"image": 2.0}, {"audio": 8.0, "image": 6.0}, mods) == {"audio": 8.0, "image": 2.0}
    for bad, says in (("audio=x", "MODALITY=NUMBER"), ("spec=2", "the modalities are audio, image"),
                      ("-1", ">= 0"), ("image=-2", ">= 0"), ("nan", "finite"), ("audio=inf", "finite")):
        with pytest.raises(LatentbridgeError, match=says):
            resolve_guidance(bad, 4.0, mods)
    # the same rules in a config, and in the model's own API
    from latentbridge.config import load_config
    from latentbridge.errors import ConfigError

    for bad, says in (("{foo: 1}", "digits data: the modalities are audio, image"), ("{audio: -1}", "finite number >= 0"),
                      (".nan", "finite number >= 0"), ("{audio: .inf}", "finite number >= 0")):
        with pytest.raises(ConfigError, match=says):
            load_config(REPO / "configs" / "mld_avdigits.yaml", [f"sampling.guidance={bad}"])
    for bad in ({"c": 2.0}, {"b": float("nan")}, -1.0):
        with pytest.raises(ValueError, match="guidance"):
            _model().denoiser(2, {"a": torch.zeros(2, 3)}, bad)


def test_one_denoiser_learns_both_directions_of_a_cross_modal_relation():
    """Modality b holds the sign of a's first entry (± 1.5 with a little noise): conditional samples of
    b follow a given a, samples of a follow b, and joint samples keep the relation; samples lie on the
    data (|b| ≈ 1.5), which a noise-predicting model of this cosine schedule misses: its clean estimate at
    the last timestep (alpha_bar 2e-7) multiplies the prediction error by ~2,000 (|b| in the hundreds)."""
    torch.manual_seed(0)
    n = 1024
    a = torch.randn(n, 3)
    b = torch.sign(a[:, :1]).repeat(1, 2) * 1.5 + 0.1 * torch.randn(n, 2)
    z = torch.cat([a, b], dim=1)
    m = LatentDenoiser(("a", "b"), (3, 2), PROCESS, condition_share=0.5, null_share=0.1, hidden=64, blocks=2,
                       time_dim=16)
    _fit(m, z)
    g = torch.Generator().manual_seed(0)
    test_a = torch.randn(200, 3)
    out = m.generate(200, {"a": test_a}, steps=25, generator=g)
    assert (torch.sign(out["b"][:, 0]) == torch.sign(test_a[:, 0])).float().mean() > 0.9
    assert out["b"].abs().median().item() == pytest.approx(1.5, abs=0.2)
    sign = torch.where(torch.rand(200, generator=g) < 0.5, -1.0, 1.0)
    out = m.generate(200, {"b": sign[:, None].repeat(1, 2) * 1.5}, steps=25, generator=g)
    assert (torch.sign(out["a"][:, 0]) == sign).float().mean() > 0.9
    assert out["a"].std().item() == pytest.approx(1.0, abs=0.3)
    joint = m.generate(200, None, steps=25, generator=g)
    assert (torch.sign(joint["a"][:, 0]) == torch.sign(joint["b"][:, 0])).float().mean() > 0.9


def test_standardised_latents_learn_offset_narrow_entries():
    """Latents far from zero with a small spread (a = 3 + 0.2 N, b = -4 ± 0.075 by the sign of a's first
    entry): a ``standardise`` model fitted with their statistics trains and samples in unit space and
    returns samples in the data's units, the condition exactly as given; its statistics travel with
    its state dict."""
    torch.manual_seed(0)
    n = 1024
    a0 = torch.randn(n, 3)
    a = 3.0 + 0.2 * a0
    b = -4.0 + 0.05 * (torch.sign(a0[:, :1]).repeat(1, 2) * 1.5 + 0.1 * torch.randn(n, 2))
    z = torch.cat([a, b], dim=1)
    m = LatentDenoiser(("a", "b"), (3, 2), PROCESS, condition_share=0.5, null_share=0.1, hidden=64, blocks=2,
                       time_dim=16, standardise=True)
    assert m.config()["standardise"] is True
    from latentbridge.tasks.mld import latent_statistics
    from latentbridge.training.fit import DictDataset

    mean, std = latent_statistics(DictDataset(z=z))
    m.fit_statistics(mean, std)
    _fit(m, z)
    g = torch.Generator().manual_seed(0)
    test_a0 = torch.randn(200, 3)
    cond = 3.0 + 0.2 * test_a0
    out = m.generate(200, {"a": cond}, steps=25, generator=g)
    assert torch.equal(out["a"], cond)
    assert (torch.sign(out["b"][:, 0] + 4.0) == torch.sign(test_a0[:, 0])).float().mean() > 0.9
    assert (out["b"] + 4.0).abs().median().item() == pytest.approx(0.075, abs=0.015)
    twin = LatentDenoiser(**m.config())
    twin.load_state_dict(m.state_dict())
    torch.testing.assert_close(twin.spread, m.spread)
    with pytest.raises(ValueError, match="does not standardise"):
        _model().fit_statistics(mean, std)


def test_set_measures():
    from latentbridge.metrics.generative import diversity, mean_pairwise_distance, nearest_distance
    from latentbridge.metrics.signal import psd_distance

    x = np.zeros((3, 1, 2, 2))
    x[1] += 1.0
    x[2] += 3.0
    assert mean_pairwise_distance(x) == pytest.approx((1 + 3 + 2) / 3)
    assert diversity(x, [0, 0, 1]) == pytest.approx(1.0)  # the single-sample group is skipped
    assert diversity(np.repeat(x[:1], 4, axis=0), [0, 0, 1, 1]) == 0.0  # a retrieval of one example
    np.testing.assert_allclose(nearest_distance(x[1:], x[:2]), [0.0, 2.0])
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 2, 4000))
    assert psd_distance(w, w) == pytest.approx(0.0, abs=1e-9)
    assert psd_distance(2 * w, w) == pytest.approx(20 * np.log10(2), abs=1e-6)
    # two sets of the same white noise: ~360 frames per bin, an estimate within ~0.5 dB
    assert psd_distance(w[:3], w[3:]) < 1.0
    red = np.cumsum(w[3:], axis=-1) * 0.1  # integrated (red) noise: -20 dB per decade, 22 dB off here
    assert psd_distance(red, w[:3]) > 10.0


# ----------------------------------------------------------------------------- command line, bridge

BRIDGE_STAGE = ["model.channels=[8,16]", "model.mask_channels=[4,8]", "model.latent_dim=8", "train.max_epochs=2",
                "train.batch_size=8", "vibration.mask_height=16", "vibration.mask_width=48", "beta.warmup_steps=5",
                "train.progress_bar=false"]
BRIDGE = ["data.test_fraction=0.3", "data.val_fraction=0.2", "model.hidden=32", "model.blocks=1",
          "train.max_epochs=3", "train.batch_size=16", "train.progress_bar=false", "sampling.steps=5",
          "evaluate.samples_per_condition=2", "evaluate.embedding=pca", "diffusion.standardise=true",
          *[f"first_stage.stages.{k}.{o}" for k in ("multimodal", "supervised") for o in BRIDGE_STAGE]]


def _o(items):
    return [x for o in items for x in ("-o", o)]


@pytest.fixture(scope="module")
def bridge_run(tmp_path_factory, feature_cache):
    root = tmp_path_factory.mktemp("mld_bridge") / "data"
    assert main(["data", "synth", "bridge", "--out", str(root), "--states", "10", "--duration", "25",
                 "--sensors", "4", "--seed", "1"]) == 0
    run = root.parent / "run"
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(run),
                 *_o([f"data.root={root}", *BRIDGE])]) == 0
    return root, run


def test_bridge_train_sample_evaluate(bridge_run, tmp_path, capsys, caplog):
    root, run = bridge_run
    info = json.loads((run / "config.json").read_text())
    stage = json.loads((run / "first_stage" / "multimodal" / "config.json").read_text())
    assert info["model_class"] == "mld_mlp" and stage["model_class"] == "mmvae"
    assert info["data"]["test_tests"] == stage["data"]["test_tests"]  # the first stage's held-out states
    assert 0.0 < info["mask_threshold"]["threshold"] <= 0.5
    # the supervised stage: masks in its bottleneck (8), its vibration code beside the VAE's (8 + 8)
    sup = json.loads((run / "first_stage" / "supervised" / "config.json").read_text())
    assert sup["model_class"] == "spec2mask" and sup["model_kwargs"]["mask_stage"] is True
    assert sup["data"]["test_tests"] == stage["data"]["test_tests"]
    assert info["model_kwargs"]["latent_dims"] == [16, 8]
    assert info["first_stage"]["keys"] == {"spec": "multimodal", "mask": "supervised"}
    assert info["first_stage"]["widened"] == {"spec": "supervised"}
    from latentbridge.models.hub import load_model
    from latentbridge.tasks.mld import bridge_splits
    from latentbridge.tasks.mld_stages import load_stages

    stages = load_stages(run / "first_stage", ("spec", "mask"))
    train, _, _ = bridge_splits(stages, str(root))
    waves, masks = train.waves[:3], train.masks[:3].astype(np.float32)
    z = stages.encode("spec", waves)
    vae, s2m = stages.saved["multimodal"].model, stages.saved["supervised"].model
    with torch.no_grad():
        own = vae.first_stage("spec").encode(torch.from_numpy(waves)).mode() / vae.latent_scale_spec
        code = s2m.infer({"wave": torch.from_numpy(waves)}).mean / s2m.latent_scale_condition
    assert torch.allclose(z, torch.cat([own, code], 1), atol=1e-5)
    assert stages.decode("spec", z).shape == waves.shape  # the vibration decodes from the VAE's part
    zm = stages.encode("mask", masks)
    with torch.no_grad():
        direct = torch.sigmoid(s2m.decode_mask(zm * s2m.latent_scale_mask))
    assert zm.shape == (3, 8) and torch.allclose(stages.decode("mask", zm), direct, atol=1e-6)

    model = load_model(run).model  # the training latents' statistics travel with the weights
    assert info["model_kwargs"]["standardise"] is True and model.standardise
    assert not torch.allclose(model.spread, torch.ones_like(model.spread)) and model.shift.abs().sum() > 0

    csv_file = sorted((root / "Data").rglob("*.csv"))[0]
    mask_file = sorted((root / "Labels").rglob("*.png"))[0]
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--condition", str(csv_file), "--condition", str(mask_file),
                 "--num-samples", "3", "--steps", "4", "--guidance", "mask=2,spec=3", "--out", str(out)]) == 0
    from_csv, from_mask = out / csv_file.stem, out / mask_file.stem
    assert len(list(from_csv.glob("mask_sample_*.png"))) == 3 and (from_csv / "mask.png").is_file()
    spec = np.load(from_mask / "log_magnitude.npy")
    assert spec.shape[:2] == (3, 4) and np.isfinite(spec).all()
    assert len(list(from_mask.glob("vibration_*.wav"))) == 3 and len(list(from_mask.glob("spectrogram_*.png"))) == 3
    settings = json.loads((out / "settings.json").read_text())
    assert settings["guidance"] == {"spec": 3.0, "mask": 2.0} and settings["steps"] == 4
    # the masks also at the labels' size (512 x 1536), bilinear from the model's 16 x 48, thresholded as mask.png
    from PIL import Image

    assert info["data"]["mask_size"] == stage["data"]["mask_size"] == [512, 1536] == settings["mask_full_size"]
    small = np.asarray(Image.open(from_csv / "mask_probability.png"), dtype=np.float64) / 255
    full = np.asarray(Image.open(from_csv / "mask_probability_full.png"), dtype=np.float64) / 255
    full_mask = np.asarray(Image.open(from_csv / "mask_full.png"))
    assert small.shape == (16, 48) and full.shape == full_mask.shape == (512, 1536)
    assert abs(full.mean() - small.mean()) < 0.02 and abs(full[16, 16] - small[0, 0]) < 0.02  # a cell's centre
    clear = np.abs(full - settings["mask_threshold"]) > 1 / 255  # (the PNG's 8 bits: pixels at the threshold aside)
    assert clear.mean() > 0.5 and np.array_equal((full_mask > 127)[clear], (full > settings["mask_threshold"])[clear])
    assert not (from_mask / "mask_full.png").exists()  # (a mask given: no mask drawn)
    # a strength for the modality given as the condition: not used, said so, not recorded as used
    with caplog.at_level("WARNING"):
        assert main(["sample", str(run), "--condition", str(csv_file), "--num-samples", "1", "--steps", "2",
                     "--guidance", "spec=5", "--out", str(tmp_path / "spec5")]) == 0
    assert "--guidance for spec not used: it is the condition here, not generated" in caplog.text
    assert list(json.loads((tmp_path / "spec5" / "settings.json").read_text())["guidance"]) == ["mask"]

    ev = tmp_path / "eval"
    assert main(["evaluate", str(run), "--out", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    for key in ("mask_iou", "mask_damaged_iou", "mask_dice", "mask_healthy_fpr", "crack_localisation_error_m",
                "crack_missed_rate", "crack_false_rate", "psd_distance_db", "psd_distance_db_first_stage",
                "fd_latent_joint"):
        assert key in m, key
    assert 0.0 <= m["mask_iou"] <= 1.0 and m["psd_distance_db"] >= 0.0
    assert 0.0 <= m["mask_iou_full_size"] <= 1.0 and 0.0 <= m["mask_damaged_iou_full_size"] <= 1.0
    assert m["scope"].startswith("held-out damage states")
    # a calibrated threshold has no note (an empty "mask_threshold_note=" was printed with the metrics)
    assert m["mask_threshold_calibrated_on"] and "mask_threshold_note" not in m
    # a recording's prediction from Python with the MLD run (an AttributeError once the recording was read)
    from latentbridge.errors import LatentbridgeError
    from latentbridge.models.hub import load_model
    from latentbridge.tasks.multimodal import predict_recording

    with pytest.raises(LatentbridgeError, match=r"a 'mld' run, not a multimodal one: `latentbridge sample .* "
                                                r"--condition .*` draws its masks, or predict with its first stage"):
        predict_recording(load_model(run), csv_file)
    for f in ("masks.png", "masks_full_size.png", "time_series.png", "latent_map.png", "interpolation_mask.png",
              "report.html"):
        assert (ev / f).is_file(), f


def test_the_supervised_stage_must_hold_the_masks(bridge_run, tmp_path):
    """A supervised network without a mask stage can serve neither as config nor as a trained folder."""
    from latentbridge.config import load_config
    from latentbridge.errors import ConfigError, ModelFolderError
    from latentbridge.tasks.mld_stages import load_stages

    with pytest.raises(ConfigError, match="supervised: a spec2mask network with model.mask_stage: true"):
        load_config(REPO / "configs" / "mld_bridge.yaml", ["first_stage.stages.supervised.model.mask_stage=false"])
    plain = load_config(REPO / "configs" / "mld_bridge.yaml", ["first_stage.stages.supervised=null"])  # the VAE alone
    assert list(plain.first_stage.stages) == ["multimodal"] and plain.stage_latent_dims() == [32, 32]
    assert load_config(REPO / "configs" / "mld_bridge.yaml").stage_latent_dims() == [64, 32]
    root, run = bridge_run
    fs = tmp_path / "first_stage"
    shutil.copytree(run / "first_stage" / "multimodal", fs / "multimodal")
    s2m = tmp_path / "s2m"
    assert main(["train", "--config", str(REPO / "configs" / "spec2mask_bridge.yaml"), "--out", str(s2m),
                 *_o([f"data.root={root}", *BRIDGE_STAGE, "train.max_epochs=1"])]) == 0
    shutil.copytree(s2m, fs / "supervised")
    with pytest.raises(ModelFolderError, match="supervised: a spec2mask model offers no first stage for 'mask'"):
        load_stages(fs, ("spec", "mask"))


def test_the_bridge_stages_read_one_vibration_setting():
    """A window set in one first stage only trained both stages, then stopped in a traceback (the diffusion fed the
    multimodal stage's windows to the supervised one); `-o vibration.KEY=V`, the bridge's usual option, was an
    unknown key for the MLD preset. It now sets both stages; stages that differ are refused before any training."""
    from latentbridge.config import load_config
    from latentbridge.errors import ConfigError

    cfg = load_config(REPO / "configs" / "mld_bridge.yaml", ["vibration.window_s=5", "vibration.sample_rate=200"])
    for key in ("multimodal", "supervised"):
        v = cfg.stage_config(key).vibration
        assert (v.window_s, v.sample_rate, v.hop_s, v.n_fft) == (5.0, 200.0, 5.0, 128), key  # the rest: the stage's
    with pytest.raises(ConfigError, match=r"the multimodal and supervised stages read the vibration differently "
                                          r"\(vibration.window_s: 5.0 and 10.0; vibration.hop_s: 2.5 and 5.0\)"
                                          r".*-o vibration.window_s=\.\.\. -o vibration.hop_s=\.\.\."):
        load_config(REPO / "configs" / "mld_bridge.yaml", ["first_stage.stages.multimodal.vibration.window_s=5",
                                                           "first_stage.stages.multimodal.vibration.hop_s=2.5"])
    with pytest.raises(ConfigError, match="vibration: sets the vibration windows .* this run reads digits"):
        load_config(REPO / "configs" / "mld_avdigits.yaml", ["vibration.window_s=5"])
    with pytest.raises(ConfigError, match="first_stage.run reuses trained ones, with theirs"):
        load_config(REPO / "configs" / "mld_bridge.yaml", ["vibration.window_s=5", "first_stage.run=runs/x"])


def test_bridge_evaluate_on_another_structure_scores_all_its_states(bridge_run, tmp_path):
    # another structure's folders share no names with the run's split (once refused as "not the data the first
    # stage was trained on") or share some (once only the run's held-out ids among them were scored)
    root, run = bridge_run
    other = tmp_path / "other"
    tests = sorted(p.name for p in (root / "Data").iterdir())[:3]
    for i, t in enumerate(tests):
        for kind in ("Data", "Labels"):
            shutil.copytree(root / kind / t, other / kind / f"Bridge2_{i:02d}")
    assert main(["evaluate", str(run), "--data", str(other), "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["scope"] == f"every state of {other}" and m["n_windows"] == 3 * len(list((root / "Data" / tests[0]).glob("*.csv"))) * 4
    assert m["psd_distance_db_real_train"] is not None and 0.0 <= m["mask_iou"] <= 1.0


def test_evaluate_of_the_training_folder_says_so(bridge_run, tmp_path, caplog):
    """`evaluate --data` given the folder a bridge model was trained on scored every state, those it learnt among
    them, as 'every state of' the folder without a word (a damaged-state IoU of 0.445 against 0.049 held out)."""
    import logging

    root, run = bridge_run
    split = json.loads((run / "first_stage" / "multimodal" / "config.json").read_text())["data"]
    seen, held = len(split["train_tests"]) + len(split["val_tests"]), len(split["test_tests"])
    for model, out in ((run, "mld"), (run / "first_stage" / "multimodal", "mmvae")):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert main(["evaluate", str(model), "--data", str(root), "--out", str(tmp_path / out)]) == 0
        assert f"{root}: the folder the model was trained on: every state is evaluated, the {seen} it was trained " \
               f"or validated on among them" in caplog.text and f"its {held} held-out states" in caplog.text, out
        assert json.loads((tmp_path / out / "metrics.json").read_text())["scope"] == \
            f"every state of {root} (the folder the model was trained on: {seen} of its states trained or validated on)"


def test_evaluate_on_recordings_without_masks_says_what_to_do(bridge_run, tmp_path, capsys):
    """A folder of recordings without crack masks (no Labels/): the MMVAE scores its vibration, an MLD run has nothing
    to score its masks against. It said "no labelled windows to evaluate"; now what was found and what to do."""
    root, run = bridge_run
    other = tmp_path / "site"
    tests = sorted(p.name for p in (root / "Data").iterdir())[:3]
    for t in tests:
        shutil.copytree(root / "Data" / t, other / "Data" / t)
    n_rec = len(list((other / "Data").rglob("*.csv")))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(other), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {other}: no crack masks to compare with (3 tests, {n_rec} recordings, none with a mask in "
                   "Labels/): evaluate scores the masks the run draws against the folder's; `latentbridge sample "
                   f"{run} --condition FILE.csv` draws masks for a recording\n"), err
    assert not (tmp_path / "ev").exists()


def test_bridge_first_stage_reuse(bridge_run, tmp_path, caplog):
    root, run = bridge_run
    again = tmp_path / "again"
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(again),
                 *_o([f"data.root={root}", *BRIDGE, "train.max_epochs=1", f"first_stage.run={run}"])]) == 0
    a = json.loads((run / "config.json").read_text())["first_stage"]["latent_scales"]
    b = json.loads((again / "config.json").read_text())["first_stage"]["latent_scales"]
    assert a == b and (again / "first_stage" / "multimodal" / "model.safetensors").is_file()
    assert not (again / "first_stage" / "multimodal" / "checkpoints").exists()
    # a plain multimodal VAE as first_stage.run: the preset's supervised stage is not used, said (it was dropped
    # without a word)
    with caplog.at_level("WARNING", logger="latentbridge"):
        assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "plain"),
                     *_o([f"data.root={root}", *BRIDGE, "train.max_epochs=1",
                          f"first_stage.run={run / 'first_stage' / 'multimodal'}"])]) == 0
    assert "holds no supervised stage: the configured first_stage.stages.supervised is not used" in caplog.text


def test_a_run_over_reused_stages_takes_its_span_and_is_evaluated_on_its_own_data(bridge_run, tmp_path, caplog,
                                                                                   capsys):
    """Over reused first stages trained without a span, `-o vibration.span_m=30` was refused as a setting of the
    stages' windows (the evaluation then advised exactly it); the run was evaluated on the first stage's data folder,
    not the one it was trained on, without naming either; a supervised network alone as first_stage.run drew a warning
    that its supervised stage was missing, then a refusal."""
    root, run = bridge_run
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "manifest.json").unlink(missing_ok=True)
    out = tmp_path / "reuse"
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(out),
                 *_o([f"data.root={copy}", *BRIDGE, "train.max_epochs=1", f"first_stage.run={run}",
                      "vibration.span_m=30"])]) == 0
    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["crack_span_m"] == 30.0 and m["crack_localisation_unit"] == "m"
    assert m["scope"].endswith(f" of {copy}"), m["scope"]
    capsys.readouterr()
    with caplog.at_level("WARNING", logger="latentbridge"):
        assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "sup"),
                     *_o([f"data.root={root}", *BRIDGE, f"first_stage.run={run / 'first_stage' / 'supervised'}"])]) == 2
    assert "a supervised spectrogram -> mask network alone" in capsys.readouterr().err
    assert "holds no supervised stage" not in caplog.text and not (tmp_path / "sup").exists()


def test_resume_with_other_first_stage_settings_is_refused(bridge_run, tmp_path, capsys):
    """The stored first stages were trained with the run's settings: a resume that changes them (which
    rewrote config.yaml while the stages stayed as they were) is refused, naming the key."""
    root, run = bridge_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / "config.yaml").read_text()
    args = ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(copy), "--resume",
            *_o([f"data.root={root}", *BRIDGE, "train.max_epochs=3", "first_stage.stages.multimodal.model.latent_dim=4"])]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "first_stage.stages.multimodal.model.latent_dim" in err and "nothing in the run folder was changed" in err
    assert (copy / "config.yaml").read_text() == before
    # the same settings resume (the stored stages kept, not retrained)
    stage_weights = (copy / "first_stage" / "multimodal" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args[:-2] + ["-o", "train.max_epochs=4"]) == 0
    info = json.loads((copy / "config.json").read_text())
    assert info["training"]["epochs"] == 4
    # the kept stages' training time still counts (it was this session's loading time only), and the total holds both
    stage_s = sum(json.loads((copy / "first_stage" / k / "config.json").read_text())["training"]["seconds"]
                  for k in ("multimodal", "supervised"))
    assert info["first_stage"]["seconds"] >= stage_s - 0.1 and stage_s > 0  # each rounded on its own (1.2 vs 1.21)
    printed = dict(re.findall(r"\b(seconds\w*)=([\d.e+]+)", capsys.readouterr().out))
    assert float(printed["seconds"]) >= float(printed["seconds_first_stage"]) + float(printed["seconds_diffusion"]) - 0.5
    assert (copy / "first_stage" / "multimodal" / "model.safetensors").read_bytes() == stage_weights


def test_a_run_stopped_in_its_first_stages_keeps_them_and_resumes(bridge_run, tmp_path, capsys):
    """Stopped after its first stage was saved and before the run's own first checkpoint: the folder was deleted on
    Ctrl-C (nothing to resume, it said, having looked for checkpoints/last.ckpt alone), and a killed one could not be
    resumed (`--resume`: nothing to resume; without it: use --force). Now it is kept, named as unfinished, and
    `--resume` trains what is left, the saved stage kept."""
    from latentbridge.outputs import output_folder

    root, run = bridge_run
    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        with output_folder(stopped, in_place=True) as folder:
            shutil.copytree(run / "first_stage" / "multimodal", folder / "first_stage" / "multimodal")
            raise KeyboardInterrupt
    assert (stopped / "first_stage" / "multimodal" / "model.safetensors").is_file()

    killed = tmp_path / "killed"  # as kill -9 leaves it: the config, one stage saved, none of the run's own files
    (killed / "first_stage").mkdir(parents=True)
    shutil.copytree(run / "first_stage" / "multimodal", killed / "first_stage" / "multimodal")
    shutil.copy(run / "config.yaml", killed / "config.yaml")
    (killed / "first_stage" / "supervised" / "logs").mkdir(parents=True)  # the next stage killed in its first epoch
    shutil.copy(run / "first_stage" / "supervised" / "config.yaml", killed / "first_stage" / "supervised")
    args = ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(killed),
            *_o([f"data.root={root}", *BRIDGE])]
    capsys.readouterr()
    assert main(args) == 2
    assert "an unfinished training: --resume continues it, --force replaces it" in capsys.readouterr().err
    assert main(args[:4] + [str(run)] + args[5:]) == 2  # a finished run: what --resume does for it
    assert "a trained run: --force replaces it; --resume with a larger train.max_epochs trains it further" in \
        capsys.readouterr().err
    weights = (killed / "first_stage" / "multimodal" / "model.safetensors").read_bytes()
    assert main(args + ["--resume"]) == 0
    assert (killed / "first_stage" / "multimodal" / "model.safetensors").read_bytes() == weights  # kept
    assert (killed / "first_stage" / "supervised" / "model.safetensors").is_file()  # trained now
    assert json.loads((killed / "config.json").read_text())["training"]["epochs"] == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(empty), "--resume",
                 *_o([f"data.root={root}", *BRIDGE])]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_reused_first_stages_name_the_states_they_never_saw(bridge_run, tmp_path, caplog, capsys):
    """``-o first_stage.run=DIR`` over a data folder holding more damage states than DIR's split: the states in
    none of its splits are left out with a warning that says so (they were left out without a word)."""
    root, run = bridge_run
    more = tmp_path / "data"
    shutil.copytree(root, more)
    last = sorted((more / "Data").iterdir())[-1].name
    for part in ("Data", "Labels"):
        shutil.copytree(more / part / last, more / part / "Test_99")
    n = len(list((more / "Data").iterdir()))
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "run"),
                     *_o([f"data.root={more}", *BRIDGE, "train.max_epochs=1", f"first_stage.run={run}"])]) == 0
    assert f"1 of its {n} damage states are in none of the first stage's splits" in caplog.text, caplog.text
    # fewer states than the split names: refused naming the first stage and the state it lacks, before the run folder
    # is written (it was left holding the config and the copied stages, which a rerun called an unfinished training)
    fewer = tmp_path / "fewer"
    shutil.copytree(root, fewer)
    for part in ("Data", "Labels"):
        shutil.rmtree(fewer / part / last)
    out = tmp_path / "refused"
    capsys.readouterr()
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(out),
                 *_o([f"data.root={fewer}", *BRIDGE, "train.max_epochs=1", f"first_stage.run={run}"])]) == 2
    err = capsys.readouterr().err
    assert f"not the data the first stage was trained on: the split of {run / 'first_stage' / 'multimodal'} names " \
           f"{last}, which this folder does not hold" in err and not out.exists(), err


def test_bridge_first_stage_with_a_modality_of_its_own(bridge_run, tmp_path, capsys):
    """A first-stage folder may hold a modality's own autoencoder beside the multimodal model: it wins
    for that modality, the multimodal model serves the rest (and the split of damage states)."""
    import shutil

    from latentbridge.config.workflows import validate
    from latentbridge.errors import ModelFolderError
    from latentbridge.tasks.mld import _fit_stage_on_arrays, bridge_splits
    from latentbridge.tasks.mld_stages import load_stages

    root, run = bridge_run
    fs = tmp_path / "first_stage"
    shutil.copytree(run / "first_stage" / "multimodal", fs / "multimodal")
    train, val, _ = bridge_splits(load_stages(fs, ("spec", "mask")))
    cfg = validate({"task": "image_ae", "data": {"root": str(root)},
                    "model": {"name": "image_conv_ae", "latent_dim": 5, "channels": [4, 8]},
                    "train": {"max_epochs": 1, "batch_size": 8, "progress_bar": False}}, "mask stage")
    _fit_stage_on_arrays(cfg, fs / "mask", train.masks.astype(np.float32), val.masks.astype(np.float32), "masks",
                         False)
    stages = load_stages(fs, ("spec", "mask"))
    assert stages.keys == {"spec": "multimodal", "mask": "mask"} and stages.latent_dims == [8, 5]
    z = stages.encode("mask", train.masks[:3].astype(np.float32))
    assert z.shape == (3, 5) and stages.decode("mask", z).shape == (3, *train.masks.shape[1:])

    again = tmp_path / "mixed"
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(again),
                 *_o([f"data.root={root}", *BRIDGE, "train.max_epochs=1", f"first_stage.run={fs}"])]) == 0
    info = json.loads((again / "config.json").read_text())
    assert info["first_stage"]["keys"] == {"spec": "multimodal", "mask": "mask"}
    assert info["model_kwargs"]["latent_dims"] == [8, 5]
    assert (again / "first_stage" / "mask" / "model.safetensors").is_file()

    shutil.rmtree(fs / "multimodal")  # a mask stage alone leaves the vibration without one
    with pytest.raises(ModelFolderError, match=r"nor spec/ or multimodal/ inside"):
        load_stages(fs, ("spec", "mask"))
    shutil.copytree(fs / "mask", fs / "spec")  # a stage for each, but no split of damage states
    out = tmp_path / "no_split"
    assert main(["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(out),
                 *_o([f"data.root={root}", *BRIDGE, f"first_stage.run={fs}"])]) == 2
    assert "need the multimodal model" in capsys.readouterr().err and not out.exists()


def test_bad_input_is_one_line_exit_2(bridge_run, tmp_path, capsys):
    from latentbridge.io import write_wav

    root, run = bridge_run
    wav = tmp_path / "digit.wav"
    write_wav(wav, np.zeros(800, dtype=np.float32) + 0.1, 8000)
    cases = [
        ["sample", str(run), "--condition", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "a")],
        ["sample", str(run), "--condition", str(REPO / "README.md"), "--out", str(tmp_path / "b")],
        ["sample", str(run), "--condition", str(wav), "--out", str(tmp_path / "b2")],
        ["sample", str(run), "--steps", "5000", "--out", str(tmp_path / "c")],
        ["sample", str(run), "--guidance", "-1", "--out", str(tmp_path / "c2")],
        ["sample", str(run), "--guidance", "audio=2", "--out", str(tmp_path / "c4")],
        ["sample", str(run), "--guidance", "mask=2,mask=3", "--out", str(tmp_path / "c7")],  # the last one kept
        ["sample", str(run), "--num-samples", "0", "--out", str(tmp_path / "c3")],
        ["sample", str(run), "--eta", "2", "--out", str(tmp_path / "c5")],  # blank samples with exit 0 once
        ["sample", str(run), "--batch-size", "0", "--out", str(tmp_path / "c6")],
        ["sample", str(run), "--class", "3", "--out", str(tmp_path / "d")],
        ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "e"),
         "-o", "first_stage.stages.audio={base: mel_ae.yaml}"],
        ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "f"),
         "-o", "first_stage.stages.multimodal.model.latent_dim=-1"],
        ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "g"),
         "-o", f"data.root={root}", "-o", f"first_stage.run={tmp_path}"],
        ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "h"),
         "-o", f"data.root={root}", "-o", "first_stage.recorded.copies=2"],  # no audio stage to train
        ["train", "--config", str(REPO / "configs" / "mld_avdigits.yaml"), "--out", str(tmp_path / "i"),
         "-o", "first_stage.recorded.share=1.5"],
        ["train", "--config", str(REPO / "configs" / "mld_bridge.yaml"), "--out", str(tmp_path / "i2"),
         "-o", f"data.root={root}", "-o", "first_stage.written.copies=2"],  # no image stage to train
    ]
    three = tmp_path / "three_sensors"  # the model's data with one sensor fewer
    for f in (root / "Data").rglob("*.csv"):
        a = np.loadtxt(f, delimiter=",", skiprows=1)
        (three / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(three / f.relative_to(root), a[:, :4], delimiter=",", header="time,a,b,c", comments="")
    shutil.copytree(root / "Labels", three / "Labels")
    cases += [
        ["evaluate", str(run), "--data", str(three), "--out", str(tmp_path / "j")],  # a traceback before
        ["evaluate", str(run / "first_stage" / "multimodal"), "--data", str(three), "--out", str(tmp_path / "k")],
        ["train", "--config", str(REPO / "configs" / "mmvae_bridge.yaml"), "--out", str(tmp_path / "l"),
         "-o", f"data.root={root}", "-o", "data.test_ids=[Test_99]"],
        ["train", "--config", str(REPO / "configs" / "mmvae_bridge.yaml"), "--out", str(tmp_path / "m"),
         "-o", f"data.root={root}", "-o", "data.test_ids=[Test_01,Test_01]"],
        ["sample", str(run / "first_stage" / "multimodal"), "--condition", "x.csv", "--out", str(tmp_path / "n")],
        ["sample", str(run), "--condition", str(root / "Data"), "--out", str(tmp_path / "o")],  # a folder
    ]
    # a run whose supervised stage lost its weights, or the whole stage (sampled from as if absent, a traceback)
    for name, cut in (("cut_weights", "supervised/model.safetensors"), ("cut_stage", "supervised")):
        shutil.copytree(run, tmp_path / name)
        gone = tmp_path / name / "first_stage" / cut
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
        cases.append(["sample", str(tmp_path / name), "--num-samples", "1", "--out", str(tmp_path / f"{name}_out")])
    for args in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, (args, err)
        assert not (tmp_path / args[args.index("--out") + 1]).exists(), args  # nothing written
        if "--data" in args:
            assert err == f"error: {three}: 3 sensor channels; the model was trained on 4", err
        if args[0] == "sample" and "multimodal" in args[1]:  # it said "a diffusion model takes numbers"
            assert "a 'multimodal' model, not a generative one; its masks from vibration: `latentbridge evaluate " \
                   "RUN --data DIR`" in err, err
        if "data.test_ids=[Test_99]" in args:
            assert "data.test_ids: unknown test 'Test_99'" in err
        if "cut_weights" in args[1]:
            assert err.endswith("supervised: an incomplete model folder: missing model.safetensors"), err
        if "cut_stage" in args[1]:
            assert "first_stage: first stages of latent sizes" in err and "a stage folder is missing" in err, err
        if args[-1].endswith("/o"):
            assert err.endswith("Data: a folder, not a condition file (give one recording, mask, audio or image file)")


def test_samples_of_conditions_with_one_file_name_do_not_overwrite(bridge_run, tmp_path):
    root, run = bridge_run
    csvs = sorted((root / "Data").rglob("*.csv"))[:2]
    given = [tmp_path / "Data" / f"Test_0{i + 1}" / "rec.csv" for i in range(2)]
    for f, g in zip(csvs, given):
        g.parent.mkdir(parents=True)
        shutil.copy(f, g)
    given.append(given[1])
    given.append(sorted((root / "Labels").rglob("*.png"))[0])  # a name of its own: its stem alone, as before
    out = tmp_path / "samples"
    assert main(["sample", str(run), *[a for g in given for a in ("--condition", str(g))], "--num-samples", "1",
                 "--steps", "2", "--out", str(out)]) == 0
    # named by their tests (they were `rec` and `rec_`, which said nothing of which test each came from); the same
    # file given twice is told apart as before
    names = ["Test_01_rec", "Test_02_rec", "Test_02_rec_", "mask"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    files = json.loads((out / "settings.json").read_text())["condition_files"]  # which folder came from which file
    assert files == dict(zip(names, map(str, given)))
    assert all((out / n / "mask.png").is_file() for n in names[:3]) and (out / "mask" / "log_magnitude.npy").is_file()
    # names that are paths or the folder's own file: `...csv` (stem `..`) wrote its samples beside --out, over the
    # user's files; `settings.json.csv` replaced its samples' folder by the settings
    project = tmp_path / "project"
    project.mkdir()
    (project / "mask.png").write_bytes(b"mine")
    for name in ("...csv", "..csv", "settings.json.csv"):
        shutil.copy(csvs[0], tmp_path / name)
    out = project / "samples"
    assert main(["sample", str(run), *[a for n in ("...csv", "..csv", "settings.json.csv") for a in
                                       ("--condition", str(tmp_path / n))],
                 "--num-samples", "1", "--steps", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [".._", "._", "settings.json_"]
    assert (project / "mask.png").read_bytes() == b"mine" and sorted(p.name for p in project.iterdir()) == [
        "mask.png", "samples"]
    assert json.loads((out / "settings.json").read_text())["conditions"] == [".._", "._", "settings.json_"]


def test_the_factor_of_each_vibration_wav_is_kept(bridge_run, tmp_path):
    """The WAVs of vibration drawn from a mask are divided by their group's peak: their level (about 1) said nothing of
    the generated vibration's, and the factor was written nowhere. settings.json keeps it, in the recordings' units."""
    import soundfile as sf

    root, run = bridge_run
    mask_file = sorted((root / "Labels").rglob("*.png"))[0]
    out = tmp_path / "s"
    assert main(["sample", str(run), "--condition", str(mask_file), "--num-samples", "3", "--steps", "2",
                 "--out", str(out)]) == 0
    from latentbridge.tasks.mld import load_run
    from latentbridge.tasks.mld_eval import log_magnitude

    settings = json.loads((out / "settings.json").read_text())
    factor = settings["vibration_wav_divided_by"]
    assert list(factor) == [mask_file.stem] and 0.001 < factor[mask_file.stem] < 1.0  # the data's level: ~0.02-0.1
    assert "multiply a WAV's samples by it" in settings["vibration_wav_note"]
    wavs = np.stack([sf.read(f)[0].T for f in sorted((out / mask_file.stem).glob("vibration_*.wav"))])
    assert np.abs(wavs).max() == pytest.approx(1.0, abs=1e-3)  # the WAVs alone: peak 1 whatever the level
    # times the factor, they are the generated vibration whose spectrograms log_magnitude.npy holds
    saved = np.load(out / mask_file.stem / "log_magnitude.npy")
    again = log_magnitude((wavs * factor[mask_file.stem]).astype(np.float32), load_run(run)[0].transform)
    loud = saved > saved.max() - 4  # within 35 dB of the peak (16-bit rounding below)
    assert loud.mean() > 0.05 and np.abs(again - saved)[loud].max() < 0.05


def test_every_unusable_condition_is_named_at_once(bridge_run, tmp_path, capsys):
    """Several --condition files: the first bad one stopped the command, the others unnamed."""
    root, run = bridge_run
    good = sorted((root / "Data").rglob("*.csv"))[0]
    (tmp_path / "cut.csv").write_text("time,a\n0,1\n")
    (tmp_path / "notes.txt").write_text("site visit")
    out = tmp_path / "s"
    assert main(["sample", str(run), "--condition", str(good), "--condition", str(tmp_path / "cut.csv"),
                 "--condition", str(tmp_path / "notes.txt"), "--num-samples", "1", "--steps", "2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --condition: 2 of 3 condition files cannot be used: ") and "cut.csv" in err \
        and "notes.txt" in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_dark_on_white_mask_and_an_ignored_eta_are_named(bridge_run, tmp_path, caplog, capsys):
    from PIL import Image

    root, run = bridge_run
    mask = np.asarray(Image.open(sorted((root / "Labels").rglob("*.png"))[0]).convert("L"))
    Image.fromarray((255 - mask).astype(np.uint8)).save(tmp_path / "inverted.png")
    with caplog.at_level(logging.WARNING):
        assert main(["sample", str(run), "--condition", str(tmp_path / "inverted.png"), "--num-samples", "1",
                     "--steps", "2", "--out", str(tmp_path / "s")]) == 0
    assert "inverted.png: the mask is" in caplog.text and "inverted (crack drawn dark on white)?" in caplog.text
    # DDIM's eta given to a scheduler without one: refused, not ignored (and recorded in the samples' settings)
    assert main(["sample", str(run), "--scheduler", "dpm", "--eta", "0.5", "--num-samples", "1", "--steps", "2",
                 "--out", str(tmp_path / "s2")]) == 2
    assert "--eta 0.5: the share of fresh noise in DDIM's steps; the dpm sampler takes none (--scheduler ddim)" in \
        capsys.readouterr().err and not (tmp_path / "s2").exists()


def test_csvs_without_a_time_column_take_their_rate_from_the_command_line(bridge_run, tmp_path, capsys):
    from latentbridge.commands import _reads_vibration
    from latentbridge.errors import LatentbridgeError

    root, run = bridge_run
    stage = run / "first_stage" / "multimodal"
    bare = tmp_path / "bare"  # the model's data as a logger without a clock writes it
    rate = None
    for f in (root / "Data").rglob("*.csv"):
        a = np.loadtxt(f, delimiter=",", skiprows=1)
        rate = 1.0 / (a[1, 0] - a[0, 0])
        (bare / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(bare / f.relative_to(root), a[:, 1:], delimiter=",")
    shutil.copytree(root / "Labels", bare / "Labels")
    capsys.readouterr()
    assert main(["evaluate", str(stage), "--data", str(bare), "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "sample rate is unknown" in err and "--sample-rate HZ for evaluate, sample" in err, err
    assert main(["evaluate", str(stage), "--data", str(root), "--out", str(tmp_path / "timed")]) == 0
    assert main(["evaluate", str(stage), "--data", str(bare), "--sample-rate", f"{rate:.6f}",
                 "--out", str(tmp_path / "rated")]) == 0
    timed, rated = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("timed", "rated"))
    assert rated["mask_iou"] == timed["mask_iou"] and rated["n_windows"] == timed["n_windows"] > 0
    csv_timed = sorted((root / "Data").rglob("*.csv"))[0]
    csv_bare = bare / csv_timed.relative_to(root)
    for name, extra in (("a", []), ("b", ["--sample-rate", f"{rate:.6f}"])):
        assert main(["sample", str(run), "--condition", str(csv_bare if extra else csv_timed), *extra,
                     "--num-samples", "1", "--steps", "2", "--out", str(tmp_path / name)]) == 0
    stem = csv_timed.stem
    assert (tmp_path / "a" / stem / "mask.png").read_bytes() == (tmp_path / "b" / stem / "mask.png").read_bytes()
    capsys.readouterr()
    assert main(["sample", str(run), "--condition", str(csv_bare), "--sample-rate", "-5", "--out",
                 str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--sample-rate must be a positive number of Hz" in err and "got -5" in err
    with pytest.raises(LatentbridgeError, match="'diffusion' run, which reads none"):
        _reads_vibration("runs/ddpm", {"task": "diffusion"}, 16000.0)
    assert _reads_vibration("models/pump", {"task": "anomaly"}, 2000.0) == {"sample_rate": 2000.0}  # rate-less CSVs
    with pytest.raises(LatentbridgeError, match="'mld' run on digits, which reads none"):
        _reads_vibration("runs/d", {"task": "mld", "data": {"kind": "digits"}}, 16000.0)

# ----------------------------------------------------------------------------- command line, digits

MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
DIGITS = ["digits.limit_train_clips=120", "digits.limit_test_clips=40", "digits.pairs_per_clip=1",
          "train.max_epochs=2", "train.progress_bar=false", "model.hidden=32", "model.blocks=1", "sampling.steps=4",
          "first_stage.stages.audio.model.channels=[8,8]", "first_stage.stages.audio.model.latent_dim=8",
          "first_stage.stages.audio.train.max_epochs=1", "first_stage.stages.image.train.max_epochs=1",
          "first_stage.stages.image.data.limit=400", "first_stage.stages.image.model.latent_dim=8",
          "first_stage.stages.audio.train.progress_bar=false", "first_stage.stages.image.train.progress_bar=false",
          "evaluate.max_wav_pairs=10", "sampling.guidance={audio: 3, image: 2}", "evaluate.diversity_inputs=4",
          "evaluate.samples_per_condition=2", "first_stage.recorded.copies=2", "first_stage.recorded.epochs=5",
          "first_stage.written.copies=1", "first_stage.written.epochs=3"]


@pytest.mark.skipif(not (FSDD.exists() and MNIST_DIR.exists()), reason="FSDD or MNIST not under ../shared/data")
def test_digits_train_sample_evaluate(tmp_path, feature_cache, small_classifiers, capsys):
    run = tmp_path / "run"
    args = _o([f"digits.fsdd_root={FSDD.parent}", f"digits.mnist_root={MNIST_DIR}", *DIGITS])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the preset trains on every core (train.num_threads: all) and gives the count back afterwards
        assert main(["train", "--config", str(REPO / "configs" / "mld_avdigits.yaml"), "--out", str(run), *args]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    info = json.loads((run / "config.json").read_text())
    assert info["model_kwargs"]["modalities"] == ["audio", "image"] and info["model_kwargs"]["latent_dims"] == [8, 8]
    assert {p.name for p in (run / "first_stage").iterdir()} >= {"audio", "image"}
    # the audio stage carries the global-variance post-filter fitted on its training clips; decoded
    # log-mels pass it, images have none
    stage_info = json.loads((run / "first_stage" / "audio" / "config.json").read_text())
    # the audio stage's encoder was aligned with two recorded copies of each training clip: they encode nearer
    # the clips' own latents than before
    rec = stage_info["data"]["recorded"]
    assert rec["copies"] == 2 and rec["epochs"] == 5 and rec["copy_error_after"] < rec["copy_error_before"], rec
    assert "Encoder aligned with recorded conditions" in (run / "first_stage" / "audio" / "README.md").read_text()
    # and the image stage's with a written copy of each training digit (another scan, pen, slant)
    wr = json.loads((run / "first_stage" / "image" / "config.json").read_text())["data"]["written"]
    assert wr["copies"] == 1 and wr["epochs"] == 3 and wr["copy_error_after"] < wr["copy_error_before"], wr
    assert "Encoder aligned with written digits" in (run / "first_stage" / "image" / "README.md").read_text()
    stage_pf = stage_info["postfilter"]
    assert stage_pf["kind"] == "cepstral_global_variance" and len(stage_pf["ratio"]) == 64
    assert all(r > 0 for r in stage_pf["ratio"]) and stage_pf["floor_db"] == pytest.approx(-100, abs=0.01)
    assert "postfilter" not in json.loads((run / "first_stage" / "image" / "config.json").read_text())
    from latentbridge.tasks.mld_stages import load_stages
    from latentbridge.transforms.postfilter import GlobalVariancePostFilter

    stages = load_stages(run, ("audio", "image"))
    assert set(stages.postfilters) == {"audio"}
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    raw = stages.decode("audio", z, postfilter=False)
    filtered = stages.decode("audio", z)
    assert not torch.allclose(filtered, raw, atol=1e-3)  # the filter does something
    torch.testing.assert_close(filtered, GlobalVariancePostFilter.from_dict(stage_pf).apply(raw))

    wav = sorted(FSDD.glob("*.wav"))[0]
    png = tmp_path / "seven.png"
    from latentbridge.io.images import write_png

    img = np.ones((40, 40))
    img[8:12, 8:32] = 0.0
    img[12:34, 26:30] = 0.0
    write_png(png, img)  # dark ink on white: inverted to MNIST's light ink
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--condition", str(wav), "--condition", str(png), "--num-samples", "2",
                 "--seed", "3", "--out", str(out)]) == 0
    assert len(list((out / wav.stem).glob("image_*.png"))) == 2
    mels = np.load(out / "seven" / "log_mel.npy")
    assert mels.shape == (2, 64, 128) and len(list((out / "seven").glob("audio_*.wav"))) == 2
    from PIL import Image

    read = np.asarray(Image.open(out / "seven" / "condition.png"))  # the digit as the model read it
    assert read.shape == (28, 28) and read[0].max() == 0 and read.max() == 255  # framed: light ink on black
    again = tmp_path / "again"
    assert main(["sample", str(run), "--condition", str(png), "--num-samples", "2", "--seed", "3",
                 "--out", str(again)]) == 0
    np.testing.assert_array_equal(np.load(again / "seven" / "log_mel.npy"), mels)  # seeded: reproducible
    # decoded --batch-size at a time (it was ignored: 4,000 samples decoded at once); the same samples whatever it is,
    # Griffin-Lim's starting phases drawn on through the chunks
    from latentbridge.tasks.mld import sample

    whole, one = (sample(run, 3, [str(png)], seed=3, batch_size=b).groups[0] for b in (None, 1))
    for key in ("audio", "waves"):
        np.testing.assert_allclose(one[key], whole[key], atol=1e-4, err_msg=key)
    import latentbridge.errors as errors  # a number of samples whose decoded data would not fit: refused before
    from latentbridge.errors import LatentbridgeError

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(errors, "available_memory", lambda: 2**20)
        with pytest.raises(LatentbridgeError, match=r"--num-samples 100: their decoded data would take about .* GiB, "
                                                    r"more than the memory available \(0.000977 GiB\)"):
            sample(run, 100, [str(png)], seed=3)

    ev = tmp_path / "eval"
    assert main(["evaluate", str(run), "--out", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    for key in ("coherence_audio_to_image", "coherence_image_to_audio", "coherence_image_to_wav_second_judge",
                "second_judge_ceiling", "fd_image", "fd_audio", "diversity_image", "diversity_audio",
                "memorisation_image", "memorisation_audio", "diversity_image_per_input",
                "first_stage_audio_accuracy", "first_stage_audio_second_judge"):
        assert np.isfinite(m[key]), key
    assert 0.0 <= m["first_stage_audio_second_judge"] <= 1.0
    assert m["diversity_image_per_input"] > 0  # several samples of one input differ
    assert (ev / "report.html").is_file() and sorted(ev.glob("image_to_audio_*.wav"))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "x"), "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error:")
    # a post-filter this version cannot read: one line, exit 2
    import shutil

    from latentbridge.models.hub import update_info

    later = tmp_path / "later"
    shutil.copytree(run, later)
    update_info(later / "first_stage" / "audio", {"postfilter": {"kind": "some_later_kind"}})
    assert main(["sample", str(later), "--num-samples", "1", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "unreadable post-filter" in err and "some_later_kind" in err and "Traceback" not in err
    update_info(later / "first_stage" / "audio", {"postfilter": {**stage_pf, "ratio": stage_pf["ratio"][:10]}})
    assert main(["sample", str(later), "--num-samples", "1", "--out", str(tmp_path / "y")]) == 2
    assert "a post-filter for 10 mel bands on a model of 64" in capsys.readouterr().err
    # sampling.postfilter: false in the run's config: decoded log-mels are the decoder's own
    from latentbridge.tasks.mld import load_run

    update_info(later / "first_stage" / "audio", {"postfilter": stage_pf})
    conf = json.loads((later / "config.json").read_text())["config"]
    update_info(later, {"config": {**conf, "sampling": {**conf["sampling"], "postfilter": False}}})
    _, plain = load_run(later)
    assert plain.postfilters == {} and torch.equal(plain.decode("audio", z), raw)
    assert set(load_run(run)[1].postfilters) == {"audio"}


def test_evaluate_elsewhere_names_the_stored_relative_data_path(tmp_path, monkeypatch, capsys):
    """The bridge's reader resolves the run's relative data path before naming it: the error named /data/b20, a
    path the user never typed, without the hint to evaluate from the training folder or give --data."""
    import dataclasses

    from latentbridge import commands
    from latentbridge.errors import DataError
    from latentbridge.models import hub

    def evaluate(run_dir, data, **kw):
        raise DataError((tmp_path / "data" / "b20").resolve(), "data root does not exist")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub, "read_info", lambda run: {"config": {"task": "multimodal", "data": {"root": "data/b20"}}})
    monkeypatch.setitem(commands.TASKS, "multimodal", dataclasses.replace(commands.TASKS["multimodal"],
                                                                          evaluate=evaluate))
    assert main(["evaluate", "runs/mm", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "data/b20: data root does not exist (the run's data.root, relative to the folder `train` ran in" in err
    assert "--data DIR" in err and str(tmp_path / "data") not in err


def test_sampled_masks_of_a_long_condition_are_averaged_a_chunk_at_a_time():
    """A 2-h recording's 1,439 windows x 128 samples were decoded and held at once (5.3 GB): the masks are averaged
    chunk by chunk, and the first window's samples alone kept, as the files written show them."""
    from latentbridge.tasks.mld_eval import _mask_mean

    class Stages:  # a decoder of latents (N, 2) into (N, 1, 3, 4) masks
        calls = []

        def decode(self, m, z):
            self.calls.append(len(z))
            ramp = torch.linspace(0, 1, 12).view(1, 1, 3, 4)
            return torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1) * ramp

    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    stages = Stages()
    first, mean = _mask_mean(stages, z, 7, chunk=4)
    whole = stages.decode("mask", z).numpy()[:, 0]
    assert max(stages.calls[:-1]) == 4 and first.shape == (7, 3, 4)
    np.testing.assert_allclose(first, whole[:7], rtol=1e-6)
    np.testing.assert_allclose(mean, whole.mean(0), rtol=1e-5)


def test_a_short_diffusion_training_names_its_stages_longer_epochs(tmp_path, monkeypatch, caplog):
    """`-o train.max_epochs=2` on the bridge preset trained its first stages their full 30 epochs, nothing said (45 s
    of a 48-s trial run): the stages' own epochs are named."""
    from latentbridge.config import load_config
    from latentbridge.tasks import mld

    trained = []
    monkeypatch.setattr(mld, "_train_stage", lambda cfg, stage_cfg, key, folder, resume: trained.append(key))
    monkeypatch.setattr(mld, "load_stages", lambda folder, modalities: None)
    cfg = load_config(REPO / "configs" / "mld_bridge.yaml", ["train.max_epochs=2"])
    with caplog.at_level(logging.WARNING):
        mld.prepare_stages(cfg, tmp_path)
    assert trained == list(cfg.first_stage.stages)
    epochs = cfg.stage_config("multimodal").train.max_epochs
    assert f"first stage 'multimodal' trains {epochs} epochs (first_stage.stages.multimodal.train.max_epochs): " \
           "train.max_epochs = 2 is the diffusion model's" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the preset as it is: its diffusion trains longer than its stages
        mld.prepare_stages(load_config(REPO / "configs" / "mld_bridge.yaml"), tmp_path)
    assert "first stage" not in caplog.text
