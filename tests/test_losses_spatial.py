"""The spatial CVAE's losses and KL schedules against hand-computed and brute-force values."""

import math

import pytest
import torch

from latentbridge.losses import (
    BoundedReconstructionLoss,
    KLDivergence,
    LatentL1Loss,
    ProgressiveKL,
    SpatialConsistencyLoss,
    beta_at,
    free_nats_at,
)


def test_sine_beta_is_the_cyclical_formula():
    lo, hi, T = 0.1, 2.0, 50
    assert beta_at(0, "sine", hi, lo, cycle_steps=T) == pytest.approx(lo)
    assert beta_at(T // 2, "sine", hi, lo, cycle_steps=T) == pytest.approx((lo + hi) / 2)
    assert beta_at(T, "sine", hi, lo, cycle_steps=T) == pytest.approx(hi)
    assert beta_at(2 * T, "sine", hi, lo, cycle_steps=T) == pytest.approx(lo)  # back down: period 2T
    for t in (3, 17, 71, 140, 333):
        expected = lo + (hi - lo) * 0.5 * (1 + math.sin(math.pi * (t / T - 0.5)))
        assert beta_at(t, "sine", hi, lo, cycle_steps=T) == pytest.approx(expected, abs=1e-12)
        assert beta_at(t + 2 * T, "sine", hi, lo, cycle_steps=T) == pytest.approx(expected, abs=1e-9)
    # monotone rise over the first half-period
    rise = [beta_at(t, "sine", hi, lo, cycle_steps=T) for t in range(T + 1)]
    assert all(b >= a for a, b in zip(rise, rise[1:]))


def test_bounded_reconstruction_by_hand():
    x = torch.zeros(2, 2, 1, 2)
    x_hat = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]], [[[3.0, -2.0]], [[0.5, 0.0]]]])
    lower, upper = torch.tensor([-1.0, -1.0]), torch.tensor([2.0, 1.0])
    loss = BoundedReconstructionLoss(weight=10.0, reduction="none")
    total, parts = loss(x_hat, x, lower, upper, return_parts=True)
    torch.testing.assert_close(parts["mse"], torch.tensor([1 / 4, (9 + 4 + 0.25) / 4]))
    # sample 2: 3 > 2 by 1, -2 < -1 by 1 → (1 + 1) / 4 elements
    torch.testing.assert_close(parts["bounds"], torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(total, parts["mse"] + 10 * parts["bounds"])
    # a mask leaves pixels out of the mean (the second pixel of each sample)
    mask = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand(2, 1, 1, 2)
    _, parts = loss(x_hat, x, lower, upper, mask=mask, return_parts=True)
    torch.testing.assert_close(parts["mse"], torch.tensor([1 / 2, (9 + 0.25) / 2]), rtol=1e-6, atol=1e-6)


def test_latent_l1():
    z = torch.tensor([[1.0, -3.0], [0.0, 0.5]])
    torch.testing.assert_close(LatentL1Loss("none")(z), torch.tensor([2.0, 0.25]))


def test_progressive_kl_relaxes_then_equals_the_kl():
    torch.manual_seed(0)
    mean = torch.randn(3, 2, 4, 4) * torch.tensor([0.05, 2.0]).view(1, 2, 1, 1)
    logvar = torch.zeros(3, 2, 4, 4)
    plain = KLDivergence("none")(mean, logvar)
    pkl = ProgressiveKL(start=0.5, steps=100, reduction="none")
    torch.testing.assert_close(pkl(mean, logvar), plain)           # evaluation: no allowance
    torch.testing.assert_close(pkl(mean, logvar, 100), plain)      # the allowance is spent
    assert free_nats_at(0, 0.5, 100) == 0.5 and free_nats_at(50, 0.5, 100) == 0.25
    # at step 0 the near-prior channel 0 (KL << 16 elements x 0.5 nats) counts as its allowance
    m = mean.clone().requires_grad_(True)
    early = pkl(m, logvar, 0)
    kl_c1 = (0.5 * m[:, 1].detach().pow(2)).flatten(1).sum(1)
    torch.testing.assert_close(early, 8.0 + kl_c1)
    early.sum().backward()
    assert float(m.grad[:, 0].abs().sum()) == 0.0 and float(m.grad[:, 1].abs().sum()) > 0.0


def _brute_force(x_hat, coords, valid, k, eps):
    b = x_hat.shape[0]
    out = []
    for i in range(b):
        c = coords[i].flatten(1).T  # (N, 2)
        v = x_hat[i].flatten(1).T   # (N, C)
        ok = valid[i].flatten().bool()
        d = torch.cdist(c, c)
        d[~ok, :] = float("inf")
        d[:, ~ok] = float("inf")
        d.fill_diagonal_(float("inf"))
        total, edges = 0.0, 0
        for p in torch.nonzero(ok).flatten():
            near, idx = d[p].topk(k, largest=False)
            for dist, j in zip(near, idx):
                if torch.isfinite(dist):
                    total += float((v[p] - v[j]).norm()) / (float(dist) + eps)
                    edges += 1
        out.append(total / max(edges, 1))
    return torch.tensor(out, dtype=x_hat.dtype)


@pytest.mark.parametrize("k", [4, 8])
def test_spatial_consistency_matches_brute_force_knn(k):
    g = torch.Generator().manual_seed(3)
    h, w = 7, 9
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    # a distorted grid (no distance ties), anisotropic units
    coords = torch.stack([yy * 0.7, xx * 1.3]).unsqueeze(0).repeat(2, 1, 1, 1)
    coords = coords + 0.1 * torch.rand(coords.shape, generator=g, dtype=torch.float64)
    x_hat = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)
    valid = torch.rand(2, 1, h, w, generator=g) > 0.2
    # a window that covers the whole map: the exact k nearest valid neighbours, whatever the holes
    loss = SpatialConsistencyLoss(k=k, eps=1e-3, radius=8, reduction="none")
    got = loss(x_hat, coords, valid)
    torch.testing.assert_close(got, _brute_force(x_hat, coords, valid, k, 1e-3), rtol=1e-6, atol=1e-8)
    # the default window (radius ceil(sqrt(k))) on a mildly distorted isotropic grid, corners included
    iso = torch.stack([yy, xx]).unsqueeze(0).repeat(2, 1, 1, 1) + 0.1 * torch.rand(
        2, 2, h, w, generator=g, dtype=torch.float64)
    full = torch.ones(2, 1, h, w, dtype=torch.bool)
    torch.testing.assert_close(SpatialConsistencyLoss(k=k, eps=1e-3, reduction="none")(x_hat, iso),
                               _brute_force(x_hat, iso, full, k, 1e-3), rtol=1e-6, atol=1e-8)


def test_spatial_consistency_weights_near_pairs_more_and_is_zero_for_a_constant_map():
    loss = SpatialConsistencyLoss(k=4, eps=1e-3, reduction="none")
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    coords = torch.stack([yy, xx]).unsqueeze(0)
    assert float(loss(torch.ones(1, 2, 8, 8), coords)) == 0.0
    step = (xx > 3).float().view(1, 1, 8, 8)
    # the same map on a grid twice as dense (coordinates halved): twice the weight on every pair
    ratio = float(loss(step, coords * 0.5)) / float(loss(step, coords))
    assert ratio == pytest.approx((1 + 1e-3) / (0.5 + 1e-3), rel=1e-4)
    # the gradient is finite at equal neighbours
    x = torch.ones(1, 1, 8, 8, requires_grad=True)
    loss(x, coords).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_beta_tracking_rows_hold_the_beta_their_loss_was_computed_with(tmp_path):
    import csv

    import lightning as L

    from latentbridge.training.callbacks import BetaTracker
    from latentbridge.training.module import TrainingModule

    class LossIsBeta(torch.nn.Module):  # the row's loss is the beta the step used
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def loss(self, x, beta=1.0):
            return (beta + 0 * self.w).expand(x.shape[0]), {}

    module = TrainingModule(LossIsBeta(), dict(optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="constant",
                                               max_epochs=1),
                            dict(schedule="linear", value=1.0, start=0.0, warmup_steps=4, cycle_steps=10, ratio=0.5))
    path = tmp_path / "beta_tracking.csv"
    L.Trainer(max_epochs=1, callbacks=[BetaTracker(path)], logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(
        module, torch.utils.data.DataLoader(torch.zeros(6, 1), batch_size=1))
    rows = list(csv.DictReader(open(path)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [float(r["beta"]) for r in rows] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])  # the first step's: 0
    assert [float(r["beta"]) for r in rows] == pytest.approx([float(r["loss"]) for r in rows])  # (one step ahead)
