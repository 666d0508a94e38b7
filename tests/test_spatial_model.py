"""The spatial conditional VAE's pieces: attention, Fourier features, the model's condition and
bottleneck, its loss parts, and the first-stage view bound to coordinates."""

import math

import pytest
import torch

from latentbridge.models.spatial import SpatialCVAE, coordinate_grid
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
