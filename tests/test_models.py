"""One contract test over every model class, plus the posterior, losses and schedules."""

import math

import pytest
import torch

from latentbridge.config import ModelConfig
from latentbridge.losses import GaussianNLLLoss, KLDivergence, MSELoss, beta_at
from latentbridge.models.hub import load_model, save_model
from latentbridge.models.outputs import DiagonalGaussian
from latentbridge.models.vae import MODELS, ConvVAE, build_model

SHAPES = [(1, 64, 63), (1, 33, 20)]


def small_cfg(name):
    return ModelConfig(name=name, latent_dim=4, channels=[4, 8], hidden_dims=[16, 16], context_frames=3)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name, shape, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, shape, small_cfg(name))
    x = torch.randn(5, *shape) * 3 + 1
    model.normalizer.fit(x)
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.latent.shape[0] == 5
    loss, parts = model.loss(x, beta=0.5)
    assert loss.shape == (5,) and torch.isfinite(loss).all()
    assert all(v.shape == (5,) for v in parts.values())
    loss.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    for method in model.score_methods:
        s = model.score(x, method=method, n_samples=4)
        assert s.shape == (5,) and torch.isfinite(s).all()
    with pytest.raises(ValueError, match="supports scores"):
        model.score(x, method="nope")
    assert model.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="expects inputs"):
        model(torch.randn(2, shape[0], shape[1] + 1, shape[2]))
    # save → load gives the same scores
    save_model(tmp_path / "m", model, name, config={}, transform={})
    loaded = load_model(tmp_path / "m").model
    torch.testing.assert_close(loaded.score(x, "mse"), model.score(x, "mse"))


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    t = torch.linspace(0, 1, 40)
    base = torch.stack([torch.sin(2 * math.pi * (k + 1) * t) for k in range(32)])
    x = (base.unsqueeze(0) * torch.rand(64, 1, 1) + 0.1 * torch.randn(64, 32, 40)).unsqueeze(1)
    model = build_model("conv_vae", (1, 32, 40), ModelConfig(latent_dim=4, channels=[8, 16]))
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


def test_importance_sampling_tightens_the_bound():
    torch.manual_seed(1)
    model = ConvVAE((1, 16, 16), latent_dim=3, channels=[4, 8]).eval()
    x = torch.randn(6, 1, 16, 16)
    torch.manual_seed(2)
    elbo = model.negative_elbo(x, n_samples=256)
    iwae = model.importance_sampled_nll(x, n_samples=256)
    # -log p(x) <= -ELBO: the importance-sampled estimate is the tighter (lower) bound
    assert (iwae <= elbo + 1e-3).all()


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
    model = build_model("dense_ae", (1, 128, 63), ModelConfig(name="dense_ae", latent_dim=8))
    first = model.encoder[0]
    assert first.in_features == 640  # 5 frames x 128 mel bands
    assert model.decoder[-1].out_features == 640
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [128, 128, 128, 128, 8]
    # folding the stacked vectors back is exact for an identity reconstruction
    x = torch.randn(2, 1, 128, 63)
    torch.testing.assert_close(model._fold(model._vectors(x), x.shape), x)
