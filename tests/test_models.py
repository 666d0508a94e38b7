"""One contract test over every registered model (parametrised from the registry itself), plus the
posterior, losses and schedules."""

import math
from pathlib import Path

import pytest
import torch

from latentbridge.config import config_to_dict, load_config, transform_spec
from latentbridge.losses import GaussianNLLLoss, KLDivergence, MSELoss, beta_at
from latentbridge.models.base import FirstStage, fit_latent_scale, round_trip_error
from latentbridge.models.hub import load_model, save_model
from latentbridge.models.outputs import DiagonalGaussian
from latentbridge.models.registry import REGISTRY, build_model
from latentbridge.models.vae import ConvVAE, ConvVAEConfig, DenseAEConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: small sizes for any model field of these names (a new model with such fields is shrunk too)
TINY = {"latent_dim": 4, "channels": [4, 8], "mask_channels": [4, 8], "image_channels": [4, 8],
        "hidden_dims": [16, 16], "private_dim": 2, "bridge_neighbours": 3, "res_blocks": 1}


def _preset_of(name: str) -> Path:
    for p in sorted(CONFIGS.glob("*.yaml")):
        if load_config(p).model.name == name:
            return p
    raise AssertionError(f"registered model {name!r} has no preset in configs/")


def _tiny(name: str):
    cfg = load_config(_preset_of(name))
    fields = type(cfg.model).model_fields
    cfg.model = cfg.model.model_copy(update={k: v for k, v in TINY.items() if k in fields})
    if "context_frames" in fields:
        cfg.model = cfg.model.model_copy(update={"context_frames": 3})
    return cfg


def _loss(model, batch):
    torch.manual_seed(0)
    return model.loss(batch, beta=0.5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_model_contract(name, tmp_path):
    torch.manual_seed(0)
    cfg = _tiny(name)
    data = cfg.example_data()
    model = build_model(cfg.model, **data)
    assert type(model).name == name and name in REGISTRY
    assert cfg.task in model.tasks
    g = torch.Generator().manual_seed(1)
    batch = model.example_batch(4, g)
    trainable = getattr(model, "trainable", True)
    if not trainable:  # closed-form detectors: fitted on normal windows, nothing to differentiate
        model.fit_normalizer(model.example_batch(32, g))
        model.fit_closed_form(model.example_batch(32, g).numpy())
    model.train()
    loss, parts = model.loss(batch, beta=0.5)
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    assert parts and all(v.shape == (4,) and torch.isfinite(v).all() for v in parts.values())
    if trainable:
        loss.mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert sum(int(gr is not None and bool(gr.abs().sum() > 0)) for gr in grads) >= 0.5 * len(grads)

    # save → load gives identical outputs
    model.eval()
    spec = transform_spec(cfg, sample_rate=data.get("sample_rate", 100.0), n_channels=data.get("n_channels", 2))
    save_model(tmp_path / "m", model, config=config_to_dict(cfg), transform=spec, card=f"# {name}\n")
    loaded = load_model(tmp_path / "m").model
    torch.testing.assert_close(_loss(loaded, batch)[0], _loss(model, batch)[0])

    # the first-stage protocol, per modality: shapes, the latent scale, and a round trip that training improves
    before = {}
    for m in model.first_stage_modalities:
        stage = model.first_stage(m)
        assert isinstance(stage, FirstStage)
        x = model.example_modality(m, batch)
        with torch.no_grad():
            q = stage.encode(x)
            assert isinstance(q, DiagonalGaussian) and tuple(q.mean.shape) == (4, *stage.latent_shape)
            assert stage.decode(q.mode()).shape == x.shape
            before[m] = round_trip_error(stage, stage.decode(q.mode()), x).mean().item()
        assert fit_latent_scale(stage, x) == pytest.approx(float(q.mode().double().std()), rel=1e-4)
        assert float(stage.latent_scale) == pytest.approx(float(q.mode().double().std()), rel=1e-4)
    if model.first_stage_modalities:
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(30):
            opt.zero_grad()
            model.loss(batch, beta=0.01)[0].mean().backward()
            opt.step()
        model.eval()
        for m in model.first_stage_modalities:
            stage = model.first_stage(m)
            x = model.example_modality(m, batch)
            with torch.no_grad():
                after = round_trip_error(stage, stage.decode(stage.encode(x).mode()), x).mean().item()
            assert math.isfinite(after) and after < before[m], \
                f"{name}/{m}: decode(encode(x)) error {after:.4g} did not fall below {before[m]:.4g} with training"

    # models that export (anomaly detectors): the ONNX scoring graph matches PyTorch
    if "anomaly" in model.tasks and cfg.task == "anomaly":
        from latentbridge.export import write_score_graph

        if hasattr(model, "fit_detector"):
            model.fit_detector(model.example_batch(16, g))
        for method in (model.default_score, "combined") if hasattr(model, "fit_detector") else (model.default_score,):
            parity = write_score_graph(model.eval(), spec, tmp_path / f"{method}.onnx", method, n_parity=3)
            assert parity["relative_score_diff"] < 1e-4, (method, parity)

    # the saved folder's scale is the stored one
    if model.first_stage_modalities:
        save_model(tmp_path / "m2", model, config=config_to_dict(cfg), transform=spec, card="# x\n")
        again = load_model(tmp_path / "m2").model
        for m in model.first_stage_modalities:
            assert float(again.first_stage(m).latent_scale) == float(model.first_stage(m).latent_scale)


def test_feature_statistics_are_summed_a_chunk_at_a_time():
    """The normaliser's mean and standard deviation of each (channel, row) over windows and frames, and the band
    profile's mean power, summed a few windows at a time: those of the whole set at once (in float64), whatever the
    chunk; without a float64 copy of every window (a fit on hours of audio peaked 0.3-0.6 GB higher)."""
    import numpy as np

    from latentbridge.data.survey import band_power
    from latentbridge.nn.conv import FeatureNormalizer

    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, 6, 9, generator=g) * torch.linspace(1, 30, 6).view(1, 1, 6, 1) - 60
    whole = x.double()
    for chunk in (7, 50, 1000):
        norm = FeatureNormalizer(2, 6)
        norm.fit(x, chunk=chunk)
        assert torch.allclose(norm.mean.double(), whole.mean(dim=(0, 3), keepdim=True), rtol=1e-6, atol=0)
        assert torch.allclose(norm.std.double(), whole.std(dim=(0, 3), keepdim=True, unbiased=False), rtol=1e-6)
    config = type("F", (), {"scale": "db", "normalize": "none"})()
    expected = (10.0 ** (whole.numpy() / 10.0)).mean(axis=(0, 1, 3))
    got = band_power(x.numpy(), config)
    assert np.allclose(got, expected, rtol=1e-12) and len(got) == 6
    import latentbridge.data.survey as survey

    chunks = [len(p) for _, p in survey._linear_power(x.numpy(), 1.0, chunk_bytes=8 * 2 * 6 * 9 * 7)]
    assert chunks == [7] * 7 + [1]


def test_every_registered_model_has_a_preset_and_a_config_class():
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert cls.config_class.model_fields["name"].default == name
        _preset_of(name)


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    t = torch.linspace(0, 1, 40)
    base = torch.stack([torch.sin(2 * math.pi * (k + 1) * t) for k in range(32)])
    x = (base.unsqueeze(0) * torch.rand(64, 1, 1) + 0.1 * torch.randn(64, 32, 40)).unsqueeze(1)
    model = build_model(ConvVAEConfig(latent_dim=4, channels=[8, 16]), input_shape=(1, 32, 40))
    model.normalizer.fit(x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for step in range(60):
        loss, _ = model.loss(x, beta=1.0)
        loss = loss.mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_importance_sampling_tightens_the_bound_and_scores_use_the_generator():
    torch.manual_seed(1)
    model = ConvVAE((1, 16, 16), latent_dim=3, channels=[4, 8]).eval()
    x = torch.randn(6, 1, 16, 16)
    g = torch.Generator().manual_seed(2)
    elbo = model.negative_elbo(x, n_samples=256, generator=g)
    iwae = model.importance_sampled_nll(x, n_samples=256, generator=g)
    # -log p(x) <= -ELBO: the importance-sampled estimate is the tighter (lower) bound
    assert (iwae <= elbo + 1e-3).all()
    # the same generator seed gives the same score; the global RNG is left alone
    state = torch.random.get_rng_state()
    a = model.score(x, "iwae", 8, generator=torch.Generator().manual_seed(5))
    b = model.score(x, "iwae", 8, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_scores_on_the_gpu_match_the_cpu_for_every_score():
    """``anomaly score --accelerator gpu``: the predict loop puts the model on the GPU while the windows
    come from CPU workers, and the Monte Carlo scores draw from a CPU generator: the same scores there."""
    import numpy as np

    from latentbridge.tasks.anomaly import score_features

    torch.manual_seed(1)
    model = ConvVAE((1, 16, 16), latent_dim=3, channels=[4, 8]).eval()
    x = np.random.default_rng(0).standard_normal((20, 1, 16, 16)).astype(np.float32)
    for method in ("mse", "elbo", "iwae"):
        cpu = score_features(model, x, method, n_samples=8, batch_size=8, seed=3)
        gpu = score_features(model.cuda(), x, method, n_samples=8, batch_size=8, seed=3)
        model.cpu()
        assert gpu.dtype == cpu.dtype and gpu.shape == (20,)
        np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3, err_msg=method)


def test_a_generator_on_another_device_draws_there_and_moves():
    """A generator whose device differs from the distribution's draws on its own device (here both are the
    CPU, so the draws are the plain ones: the same as before for CPU scoring)."""
    d = DiagonalGaussian(torch.zeros(4, 3), torch.zeros(4, 3))
    a = d.rsample_n(5, generator=torch.Generator().manual_seed(7))
    b = torch.randn((5, 4, 3), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(d.sample(torch.Generator().manual_seed(7)),
                               torch.randn((4, 3), generator=torch.Generator().manual_seed(7)))


def test_diagonal_gaussian_against_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    q = DiagonalGaussian(mean, logvar)
    ref = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    std = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(q.kl(), torch.distributions.kl_divergence(ref, std).sum(-1))
    p = DiagonalGaussian(torch.randn(4, 3), torch.randn(4, 3))
    refp = torch.distributions.Normal(p.mean, p.std)
    torch.testing.assert_close(q.kl(p), torch.distributions.kl_divergence(ref, refp).sum(-1))
    z = torch.randn(7, 4, 3)
    torch.testing.assert_close(q.log_prob(z), ref.log_prob(z).sum(-1))
    torch.testing.assert_close(q.nll(mean), -ref.log_prob(mean).sum(-1))
    assert q.mode() is mean
    assert q.sample().shape == (4, 3) and q.rsample_n(5).shape == (5, 4, 3)
    point = DiagonalGaussian.point(mean)
    assert torch.equal(point.sample(), mean) and float(point.std.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="point mass"):
        point.kl()


def test_kl_terms_of_bfloat16_posteriors_near_the_prior_match_float64():
    """Under bf16 autocast the encoders give bfloat16 means and log-variances; the KL computed from bfloat16
    terms (var - 1 - logvar cancels near the prior) was 17 % (16 dims, values ~ N(0, 0.05)) to 63 % (128 dims,
    ~ N(0, 0.02)) off. The same bfloat16 inputs now give the float64 KL to float32's precision, in every KL
    the models use: the posterior's (against N(0, 1) and against another Gaussian), KLDivergence, ProgressiveKL."""
    from latentbridge.losses import ProgressiveKL

    g = torch.Generator().manual_seed(0)
    for dims, s in ((16, 0.05), (128, 0.02)):
        m, lv = [(torch.randn(32, dims, generator=g) * s).bfloat16() for _ in range(2)]
        om, olv = [(torch.randn(32, dims, generator=g) * s).bfloat16() for _ in range(2)]
        M, LV, OM, OLV = (t.double() for t in (m, lv, om, olv))
        ref = (0.5 * (M ** 2 + LV.exp() - 1 - LV)).sum(1)
        ref_other = (0.5 * ((M - OM) ** 2 / OLV.exp() + (LV - OLV).exp() - 1 - (LV - OLV))).sum(1)
        for got, want in ((DiagonalGaussian(m, lv).kl(), ref), (KLDivergence("none")(m, lv), ref),
                          (ProgressiveKL(reduction="none")(m, lv), ref),
                          (DiagonalGaussian(m, lv).kl(DiagonalGaussian(om, olv)), ref_other)):
            assert got.dtype == torch.float32
            rel = float(((got.double() - want).abs() / want).max())
            assert rel < 1e-4, (dims, rel)


def test_losses_against_hand_computed_values():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    x_hat = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(MSELoss("none")(x_hat, x), torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(MSELoss("mean")(x_hat, x), torch.tensor(1.5))
    nll = GaussianNLLLoss("none")(x_hat, x, torch.tensor(0.0))
    c = 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(nll, torch.tensor([0.5 * 4 + 2 * c, 0.5 * 2 + 2 * c]))
    kl = KLDivergence("none")(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]]))
    torch.testing.assert_close(kl, torch.tensor([0.5 * (1.0 + 0.0) + 0.5 * (2.0 - 1.0 - math.log(2.0))]))
    with pytest.raises(ValueError, match="reduction"):
        MSELoss("avg")(x_hat, x)


def test_beta_schedules():
    assert beta_at(50, "constant", 0.7) == 0.7
    assert beta_at(0, "linear", 1.0, 0.0, 100) == 0.0
    assert beta_at(50, "linear", 1.0, 0.0, 100) == 0.5
    assert beta_at(500, "linear", 1.0, 0.0, 100) == 1.0
    # cyclical: rise over the first half of each 100-step cycle, then hold, then restart
    assert beta_at(25, "cyclical", 1.0, 0.0, cycle_steps=100, ratio=0.5) == 0.5
    assert beta_at(75, "cyclical", 1.0, 0.0, cycle_steps=100, ratio=0.5) == 1.0
    assert beta_at(100, "cyclical", 1.0, 0.0, cycle_steps=100, ratio=0.5) == 0.0
    with pytest.raises(ValueError):
        beta_at(0, "exponential", 1.0)


def test_dense_ae_is_the_dcase_baseline_shape():
    model = build_model(DenseAEConfig(latent_dim=8), input_shape=(1, 128, 63))
    first = model.encoder[0]
    assert first.in_features == 640  # 5 frames x 128 mel bands
    assert model.decoder[-1].out_features == 640
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [128, 128, 128, 128, 8]
    # folding the stacked vectors back is exact for an identity reconstruction
    x = torch.randn(2, 1, 128, 63)
    torch.testing.assert_close(model._fold(model._vectors(x), x.shape), x)
    assert model.latent_shape == (59, 8)


@pytest.mark.parametrize("name", ["mmvae", "avmvae", "mel_vae"])
def test_inference_in_train_mode_is_the_eval_answer_and_changes_nothing(name):
    """``predict`` / ``reconstruct`` / ``sample`` of a model left in train mode (a notebook's model mid-training) are
    the eval-mode answers: no dropout drawn, the normalisation statistics not updated, every module's mode kept."""
    torch.manual_seed(0)
    cfg = _tiny(name)
    model = build_model(cfg.model, **cfg.example_data())
    batch = model.example_batch(4, torch.Generator().manual_seed(1))
    if hasattr(model, "fit_normalizer"):
        model.fit_normalizer(batch)
    if name == "mmvae":
        run = lambda: model.predict(batch, ("spec",))["mask_prob"]  # noqa: E731
    elif name == "avmvae":
        run = lambda: model.predict(batch, ("audio",))["image"]  # noqa: E731
    else:
        run = lambda: model.reconstruct(batch)  # noqa: E731
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms or any(isinstance(m, torch.nn.Dropout) for m in model.modules()), f"{name} has nothing to test"
    model.eval()
    expected = run()
    model.train()
    frozen = next(m for m in model.modules() if m is not model and list(m.children()))
    frozen.eval()  # a submodule kept in eval mode stays so
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    modes = [m.training for m in model.modules()]
    first, second = run(), run()
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)
    for k, v in model.named_buffers():
        torch.testing.assert_close(v, buffers[k], msg=f"buffer {k} changed by inference in train mode")
    assert [m.training for m in model.modules()] == modes and model.training and not frozen.training


def test_multimodal_inputs_of_the_wrong_shape_kind_or_range_are_named():
    torch.manual_seed(0)
    cfg = _tiny("mmvae")
    model = build_model(cfg.model, **cfg.example_data()).eval()
    b = model.example_batch(2, torch.Generator().manual_seed(1))
    c, t = b["wave"].shape[1:]
    expected = model.predict({"wave": b["wave"]})["mask_prob"]
    as_numpy = model.predict({"wave": b["wave"].double().numpy()})["mask_prob"]  # numpy, float64: read as float32
    torch.testing.assert_close(as_numpy, expected)
    for batch, said in (({"wave": b["wave"][:, :1]}, rf"expects wave of shape \(B, {c}, {t}\), got \(2, 1, {t}\)"),
                        ({"wave": b["wave"][0]}, rf"got \({c}, {t}\)"),
                        ({"wave": b["wave"][..., :-5]}, rf"got \(2, {c}, {t - 5}\)"),
                        ({"mask": b["mask"] * 255}, r"mask values must be in \[0, 1\], got 0 .. 255 .8-bit"),
                        ({"mask": b["mask"] * 1.1}, r"got 0 .. 1.1$"),  # (no advice to divide by 255)
                        ({"mask": b["mask"] * float("nan")}, "mask holds NaN or infinite values")):
        with pytest.raises(ValueError, match=said):
            model.predict(batch, ("spec", "mask"))
    model.train()
    model.loss(b, beta=1.0)  # (training batches are not range-checked: no device sync per step)
    av = build_model(_tiny("avmvae").model, **_tiny("avmvae").example_data()).eval()
    ab = av.example_batch(2, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"image values must be in \[0, 1\], got 0 .. 255"):
        av.predict({"image": ab["image"] * 255}, ("image",))
    with pytest.raises(ValueError, match="AudioVisualVAE expects audio of shape"):
        av.predict({"audio": ab["audio"][:, :, :3]}, ("audio",))
