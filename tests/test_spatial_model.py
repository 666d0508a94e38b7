"""The spatial conditional VAE's pieces: attention, Fourier features, the model's condition and
bottleneck, its loss parts, and the first-stage view bound to coordinates."""

import math

import pytest
import torch

from latentbridge.models.spatial import SpatialCVAE, coordinate_grid, local_average
from latentbridge.nn.attention import CrossAttention2d, MultiHeadAttention, SelfAttention2d
from latentbridge.nn.spatial import FourierFeatures, MultiScaleBlock, OutputScale


def test_multi_head_attention_matches_torch():
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4, kv_channels=6)
    ref = torch.nn.MultiheadAttention(16, 4, kdim=6, vdim=6, batch_first=True)
    with torch.no_grad():
        ref.q_proj_weight.copy_(ours.q.weight)
        k_w, v_w = ours.kv.weight.chunk(2, 0)
        ref.k_proj_weight.copy_(k_w)
        ref.v_proj_weight.copy_(v_w)
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    q, kv = torch.randn(3, 10, 16), torch.randn(3, 7, 6)
    out, w = ours(q, kv, weights=True)
    ref_out, ref_w = ref(q, kv, kv)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-6)


def test_cross_attention_sees_the_condition_as_a_set():
    torch.manual_seed(1)
    att = CrossAttention2d(8, 4, heads=2)
    x, cond = torch.randn(2, 8, 4, 4), torch.randn(2, 4, 3, 3)
    w = att.weights(x, cond)
    assert w.shape == (2, 16, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 16))
    # permuting the condition's positions (its tokens) changes nothing: attention pools over them
    perm = torch.randperm(9)
    shuffled = cond.flatten(2)[..., perm].reshape(cond.shape)
    torch.testing.assert_close(att(x, shuffled), att(x, cond), rtol=1e-5, atol=1e-5)
    # reduced self-attention keeps the shape and is a residual around the identity
    sa = SelfAttention2d(8, heads=2, reduction=2)
    assert sa(x).shape == x.shape


def test_fourier_features_and_blocks():
    ff = FourierFeatures(2, n_frequencies=4, max_frequency=8.0)
    c = coordinate_grid(5, 6, 2)
    f = ff(c)
    assert f.shape == (2, ff.out_channels, 5, 6) and ff.out_channels == 2 * (1 + 2 * 4)
    torch.testing.assert_close(f[:, :2], c)
    freqs = torch.exp(torch.linspace(0, math.log(8.0), 4)) * math.pi
    torch.testing.assert_close(f[0, 2], torch.sin(c[0, 0] * freqs[0]))            # first channel, lowest frequency
    torch.testing.assert_close(f[0, 2 + 4 + 3], torch.cos(c[0, 0] * freqs[3]))    # ... its highest cosine
    assert MultiScaleBlock(8)(torch.randn(1, 8, 6, 6)).shape == (1, 8, 6, 6)
    scale = OutputScale(3)
    x = torch.randn(1, 3, 2, 2)
    torch.testing.assert_close(scale(x), x)


def _model(**kw):
    torch.manual_seed(0)
    kw = {"skips": False, "residual": False, "blind_spot": 0, **kw}  # the bottleneck-only model unless asked
    return SpatialCVAE(5, 16, latent_dim=3, channels=[8, 16], condition_dim=8, fourier_frequencies=4, **kw)


def test_latent_is_the_only_path_and_the_condition_matters():
    model = _model().eval()
    assert model.latent_shape == (3, 8, 8)
    z = torch.randn(2, 3, 8, 8)
    here = model.first_stage("", coords=coordinate_grid(16, 16, 1))
    there = model.first_stage("", coords=coordinate_grid(16, 16, 1) * 0.3 + 0.5)
    with torch.no_grad():
        a, b = here.decode(z), there.decode(z)
        assert a.shape == (2, 5, 16, 16)
        assert float((a - b).abs().mean()) > 1e-4  # the same latent decodes differently elsewhere
        # the output depends on the input only through the latent: equal posteriors, equal outputs
        batch = model.example_batch(2, torch.Generator().manual_seed(0))
        out = model(batch, sample=False)
        q = out["posterior"]
        again = model.decode_condition(q.mode(), model.condition(batch["coords"]))[0]
        torch.testing.assert_close(out["mean"], again)
    # the default view is the whole patch as a section: the same as binding the full grid
    with torch.no_grad():
        torch.testing.assert_close(model.first_stage("").decode(z), a)
    with pytest.raises(ValueError, match="first-stage"):
        model.first_stage("mask")


def test_loss_parts_and_their_gradients():
    model = _model(loss_weights={"spatial": 0.1, "free_nats": 0.5, "free_nats_steps": 10})
    model.set_bounds([-1.0] * 5, [1.0] * 5)
    batch = model.example_batch(4, torch.Generator().manual_seed(2))
    model.train()
    loss, parts = model.loss(batch, beta=0.3)
    assert set(parts) == {"mse", "bounds", "kl", "l1", "spatial", "nll"}
    assert int(model.train_steps) == 1
    w = model.weights
    expected = (parts["mse"] + w["bounds"] * parts["bounds"] + 0.3 * parts["kl"] + w["latent_l1"] * parts["l1"]
                + 0.1 * parts["spatial"] + w["uncertainty"] * parts["nll"])
    torch.testing.assert_close(loss, expected)
    # the variance head learns from the NLL alone; its gradient never reaches the mean's head
    parts["nll"].mean().backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.to_mean.parameters())
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.to_logvar.parameters())
    model.eval()
    model.loss(batch)
    assert int(model.train_steps) == 1  # evaluation does not advance the progressive-KL clock


def test_a_training_step_under_cuda_like_bf16_autocast(cuda_like_autocast):
    """``--precision bf16-mixed`` (CPU autocast as strict as CUDA's): the loss and each part finite and float32,
    the gradients finite."""
    model = _model(loss_weights={"spatial": 0.1, "free_nats": 0.5, "free_nats_steps": 10}).train()
    model.set_bounds([-1.0] * 5, [1.0] * 5)
    batch = model.example_batch(4, torch.Generator().manual_seed(2))
    with torch.autocast(cuda_like_autocast, dtype=torch.bfloat16):
        loss, parts = model.loss(batch, beta=0.3)
    assert torch.isfinite(loss).all() and loss.dtype == torch.float32
    assert parts["kl"].dtype == torch.float32 and all(torch.isfinite(v).all() for v in parts.values())
    loss.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_enhance_uses_the_generator_only():
    model = _model().eval()
    b = model.example_batch(2)
    state = torch.random.get_rng_state()
    r1 = model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], 4, torch.Generator().manual_seed(3))
    r2 = model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], 4, torch.Generator().manual_seed(3))
    assert torch.equal(state, torch.random.get_rng_state())
    torch.testing.assert_close(r1["latent_var"], r2["latent_var"])
    assert r1["mean"].shape == (2, 5, 16, 16) and r1["latent"].shape == (2, 3, 8, 8)
    assert (r1["aleatoric_var"] > 0).all() and (r1["latent_var"] >= 0).all()


def test_skip_connections_reach_the_output_and_drop_the_first_stage_protocol():
    plain, skips = _model().eval(), _model(skips=True).eval()
    assert plain.first_stage_modalities == ("",) and skips.first_stage_modalities == ()
    with pytest.raises(ValueError, match="no first-stage protocol"):
        skips.first_stage("")
    b = skips.example_batch(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond = skips.condition(b["coords"])
        q, feats = skips.encode_input(b["x"], b["observed"], b["coarse"], cond)
        assert feats[0].shape == (2, 8, 16, 16) and feats[1] is None and plain.encode_input(b["x"], b["observed"], b["coarse"], cond)[1] is None
        # the same latent with other encoder features decodes differently: a path besides z
        a = skips.decode_condition(q.mode(), cond, feats)[0]
        other = skips.decode_condition(q.mode(), cond, (feats[0].flip(-1), None))[0]
        assert float((a - other).abs().mean()) > 1e-4
        with pytest.raises(ValueError, match="encoder's features"):
            skips.decode_condition(q.mode(), cond)


def test_blind_spot_output_never_depends_on_the_pixels_own_value():
    model = _model(skips=True, blind_spot=3).eval()
    b = model.example_batch(2, torch.Generator().manual_seed(1))
    b["observed"][:] = 1
    b["observed"][1, :, 2:6, 2:6] = 0  # a hole in the second patch
    gen = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    r = model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], 2, gen())
    for y, x in ((5, 7), (0, 0), (15, 9), (10, 3)):
        poked = b["x"].clone()
        poked[:, :, y, x] += 25.0
        r2 = model.enhance(poked, b["observed"], b["coarse"], b["coords"], 2, gen())
        for key in ("mean", "aleatoric_var", "latent_var"):
            torch.testing.assert_close(r2[key][:, :, y, x], r[key][:, :, y, x], rtol=0, atol=0)
        assert float((r2["mean"] - r["mean"]).abs().max()) > 1e-3  # ... while its neighbours see it
    # without the blind spot the same model reads the pixel itself
    model.params["blind_spot"] = 0
    r0 = model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], 0)
    poked = b["x"].clone()
    poked[:, :, 5, 7] += 25.0
    r1 = model.enhance(poked, b["observed"], b["coarse"], b["coords"], 0)
    assert float((r1["mean"] - r0["mean"])[:, :, 5, 7].abs().max()) > 1e-3
    with pytest.raises(ValueError, match="at least 2"):
        _model(blind_spot=1)


def test_local_average_is_the_gaussian_mean_of_the_observed_neighbours():
    x = torch.arange(2 * 6 * 7, dtype=torch.float64).view(1, 2, 6, 7) ** 1.3
    obs = torch.ones(1, 1, 6, 7, dtype=torch.float64)
    obs[0, 0, 2, 3] = obs[0, 0, 0, 0] = 0
    avg = local_average(x, obs)
    g = torch.exp(-0.5 * torch.arange(-2.0, 3.0, dtype=torch.float64) ** 2)
    for c, y, xx in ((0, 2, 3), (1, 0, 0), (1, 4, 5), (0, 5, 6)):
        num = den = 0.0
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                yy, xq = y + dy, xx + dx
                if 0 <= yy < 6 and 0 <= xq < 7 and obs[0, 0, yy, xq]:
                    w = float(g[dy + 2] * g[dx + 2])
                    num, den = num + w * float(x[0, c, yy, xq]), den + w
        assert abs(float(avg[0, c, y, xx]) - num / den) < 1e-9
    assert float(local_average(x, torch.zeros_like(obs)).abs().max()) == 0.0  # nothing observed: 0
    # a constant map stays constant wherever anything is observed
    torch.testing.assert_close(local_average(torch.full_like(x, 3.0), obs), torch.full_like(x, 3.0))


def test_residual_mean_is_the_local_average_plus_the_networks_correction():
    model = _model(skips=True, residual=True).eval()
    b = model.example_batch(2, torch.Generator().manual_seed(3))
    with torch.no_grad():
        cond = model.condition(b["coords"])
        q, (feats, avg) = model.encode_input(b["x"], b["observed"], b["coarse"], cond)
        torch.testing.assert_close(avg, local_average(b["x"], b["observed"]))
        with_avg = model.decode_condition(q.mode(), cond, (feats, avg))[0]
        without = model.decode_condition(q.mode(), cond, (feats, None))[0]
        torch.testing.assert_close(with_avg - without, avg)
    with pytest.raises(ValueError, match="needs skips"):
        _model(residual=True)


def test_noise_model_is_the_lower_envelope_of_the_predicted_variance(monkeypatch):
    model = _model(skips=True, residual=True, blind_spot=4, fuse=True).eval()
    assert model.noise_model.shape == (5, 2) and not bool(model.noise_model.any())  # not fitted: no fusion
    g = torch.Generator().manual_seed(0)
    n, p = 40, 16
    level = torch.rand(n, 5, p, p, generator=g) * 3
    a_true = torch.tensor([0.2, 0.5, 0.0, 1.0, 0.3]).view(1, 5, 1, 1)
    b_true = torch.tensor([0.1, 0.05, 0.2, 0.02, 0.5]).view(1, 5, 1, 1)
    # the predicted variance = noise + the prediction's own variance (>= 0, often near 0)
    extra = torch.distributions.Exponential(torch.tensor(20.0)).sample((n, 5, p, p))
    var = a_true * level + b_true + extra

    def fake_enhance(x, observed, coarse, coords, n_samples=0, generator=None, fuse=True):
        i = int(x[0, 0, 0, 0])
        return {"mean": level[i:i + len(x)], "aleatoric_var": var[i:i + len(x)]}

    monkeypatch.setattr(model, "enhance", fake_enhance)
    x = torch.zeros(n, 5, p, p)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)  # tells the fake which rows it was given
    ones, zeros = torch.ones(n, 1, p, p), torch.zeros(n, 1, p, p)
    coef = model.fit_noise_model(x, ones, zeros, coordinate_grid(p, p, n), batch_size=8)
    a, b = torch.tensor(coef["a"]), torch.tensor(coef["b"])
    # the line through the low quantiles: the noise's slope, and its intercept above b only by the extra's
    # 10 % quantile (0.005)
    assert (a - a_true.flatten()).abs().max() < 0.02 and (b - b_true.flatten()).abs().max() < 0.02
    torch.testing.assert_close(model.noise_model, torch.stack([a, b], 1).float())


def test_fusion_is_the_gaussian_posterior_of_prediction_and_measurement():
    model = _model(skips=True, residual=True, blind_spot=2, fuse=True).eval()
    model.noise_model.copy_(torch.tensor([[0.0, 0.5]] * 5))  # noise variance 0.5 everywhere
    b = model.example_batch(2, torch.Generator().manual_seed(4))
    b["observed"][:] = 1
    b["observed"][:, :, :3] = 0  # three hidden rows: not measured, nothing to fuse
    raw = model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], 0, fuse=False)
    fused = model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], 0)
    s_n = torch.full_like(raw["mean"], 0.5)
    s_p = (raw["aleatoric_var"] - s_n).clamp_min(0.2 * s_n)
    w = s_n / (s_n + s_p)
    m = b["observed"].expand_as(w) > 0
    torch.testing.assert_close(fused["mean"][m], (w * raw["mean"] + (1 - w) * b["x"])[m])
    torch.testing.assert_close(fused["aleatoric_var"][m], (w * s_p)[m])
    torch.testing.assert_close(fused["mean"][~m], raw["mean"][~m])  # hidden pixels: the prediction
    # the fused value lies between the prediction and the measurement
    lo, hi = torch.minimum(raw["mean"], b["x"]), torch.maximum(raw["mean"], b["x"])
    assert bool(((fused["mean"] >= lo - 1e-6) & (fused["mean"] <= hi + 1e-6))[m].all())
    with pytest.raises(ValueError, match="without fuse"):
        _model(skips=True, blind_spot=2).fit_noise_model(b["x"], b["observed"], b["coarse"], b["coords"])
