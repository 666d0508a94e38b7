"""The diffusion engine: scheduler round trips, a denoiser that learns a toy 2-D distribution
(classes and a continuous condition), guidance, EMA, seeded sampling, and the metrics that
judge samples (Fréchet distance, precision / recall)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentbridge.metrics.generative import (frechet_distance, frechet_distance_from_stats, gaussian_stats,
                                             pixel_features, precision_recall)
from latentbridge.models.denoisers import Denoiser
from latentbridge.models.process import SCHEDULERS, DiffusionProcess
from latentbridge.nn.unet import ConditionEmbedding, TimestepMLP, UNet2D, timestep_embedding

MODES = torch.tensor([[0.2, 0.2], [0.8, 0.2], [0.2, 0.8], [0.8, 0.8]])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- the process


@pytest.mark.parametrize("schedule,prediction", [("linear", "epsilon"), ("cosine", "v_prediction")])
def test_noising_then_the_true_target_gives_back_the_clean_sample(schedule, prediction):
    proc = DiffusionProcess(schedule=schedule, prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(64, 1, 4, 4, generator=g) * 2 - 1
    x_t, t, target = proc.diffuse(x0, generator=g)
    assert t.min() >= 0 and t.max() < 1000 and len(set(t.tolist())) > 30
    a = proc.alphas_cumprod[t].view(-1, 1, 1, 1)
    eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
    # the target is the noise, or the velocity sqrt(a) eps - sqrt(1 - a) x0
    expected = eps if prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
    torch.testing.assert_close(target, expected, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(proc.predict_x0(x_t, t, target), x0, atol=2e-3, rtol=1e-3)
    # the schedules: linear betas from 1e-4 to 0.02; alpha_bar falls to ~0 at the last step
    assert float(proc.alphas_cumprod[0]) == pytest.approx(1 - 1e-4 if schedule == "linear" else 1.0, abs=1e-3)
    assert float(proc.alphas_cumprod[-1]) < 1e-3


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_every_sampler_returns_the_clean_sample_an_oracle_denoiser_knows(scheduler, prediction):
    """Round trip through the reverse process: a denoiser that knows x0 leads every scheduler
    (DDPM ancestral, DDIM, DPM-Solver++) from pure noise back to x0."""
    proc = DiffusionProcess(prediction=prediction)
    x0 = torch.linspace(-0.9, 0.9, 2 * 9).view(2, 1, 3, 3)
    ac = proc.alphas_cumprod

    def oracle(x, t):
        a = ac[int(t)]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0

    for steps in ({"ddpm": 100, "ddim": 20, "dpm": 10}[scheduler], 7, 13):  # 7 and 13 divide no 1000: DDIM stepped
        # to t - 1000 // steps, not the sequence's next timestep, and ended 0.03 off (a last step to alpha_bar_0)
        calls = []
        out = proc.sample(oracle, x0.shape, scheduler=scheduler, steps=steps,
                          generator=torch.Generator().manual_seed(3), progress=calls.append)
        assert len(calls) == steps
        torch.testing.assert_close(out, x0, atol=2e-3 if steps > 10 else 1e-4, rtol=0)
    wide = DiffusionProcess(prediction=prediction, clip_sample=2.0)  # clean samples up to 1.8, clipped at 2
    x0 = 2 * x0
    ac = wide.alphas_cumprod
    out = wide.sample(oracle, x0.shape, scheduler=scheduler, steps=20, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, x0, atol=2e-3, rtol=0)  # (DPM-Solver++'s thresholding put them within 1)


def test_schedulers_are_configured_alike_and_refuse_bad_settings():
    proc = DiffusionProcess(schedule="cosine", prediction="v_prediction", clip_sample=None)
    for kind in SCHEDULERS:
        s = proc.scheduler(kind, 10)
        assert s.config.prediction_type == "v_prediction" and s.config.beta_schedule == "squaredcos_cap_v2"
        assert len(s.timesteps) == 10 and int(s.timesteps[0]) == 999  # trailing spacing starts at the last step
    assert proc.scheduler("ddpm").timesteps.tolist() == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="scheduler must be one of"):
        proc.scheduler("euler", 10)
    with pytest.raises(ValueError, match="steps must be in"):
        proc.scheduler("ddim", 1001)
    with pytest.raises(ValueError, match="steps must be in 1..1000, got 0"):  # (0 was taken for "every timestep")
        proc.scheduler("ddim", 0)
    with pytest.raises(ValueError, match=r"noise of shape \(3, 2\) given for samples of shape \(2, 2\)"):
        proc.sample(lambda x, t: x, (2, 2), steps=2, noise=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="schedule"):
        DiffusionProcess(schedule="quadratic")


def test_ddim_with_full_noise_stays_finite_from_the_last_timestep():
    """From t = 999 of the cosine schedule (alpha_bar 2.4e-9) with eta 1, the step's variance equals 1 - alpha_bar_prev
    in exact arithmetic; float32 put the square root's argument below 0 and every sample came out NaN at 5 steps."""
    from latentbridge.errors import LatentbridgeError

    proc = DiffusionProcess(schedule="cosine", prediction="v_prediction", clip_sample=None)

    def denoise(x, t):
        return 0.5 * x

    for steps in (3, 5, 7, 20):
        out = proc.sample(denoise, (4, 8), scheduler="ddim", steps=steps, eta=1.0,
                          generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out).all(), steps
    for eta in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"eta must be in \[0, 1\]"):
            proc.sample(denoise, (4, 8), scheduler="ddim", steps=5, eta=eta)
    with pytest.raises(LatentbridgeError, match="the ddim sampler gave non-finite values \\(5 steps, eta 0\\): try "
                                                "other --steps or --scheduler"):
        proc.sample(lambda x, t: x * float("nan"), (2, 4), scheduler="ddim", steps=5)
    # a guidance of 1e38 overflows: the error names it (it advised other steps)
    with pytest.raises(LatentbridgeError, match="non-finite values \\(3 steps, eta 0, guidance 1e\\+38\\): try a "
                                                "smaller --guidance"):
        proc.sample(lambda x, t: x * 1e38 * 1e38, (2, 4), scheduler="ddim", steps=3, guidance=1e38)


# --------------------------------------------------------------------------- networks


def test_timestep_embedding_and_condition_embedding():
    e = timestep_embedding(torch.tensor([0, 1, 500]), 16)
    assert e.shape == (3, 16)
    torch.testing.assert_close(e[0], torch.cat([torch.ones(8), torch.zeros(8)]))
    assert not torch.allclose(e[1], e[2])
    assert timestep_embedding(torch.tensor([3]), 7).shape == (1, 7)
    emb = ConditionEmbedding(8, n_classes=3, n_continuous=1)
    y = torch.tensor([0, 1, 2])
    c = torch.tensor([[0.1], [0.5], [0.9]])
    full = emb(3, y, c)
    null = emb(3, None, None)
    # dropping a row gives exactly the null condition (null class + learned null vector)
    dropped = emb(3, y, c, drop=torch.tensor([True, False, True]))
    torch.testing.assert_close(dropped[[0, 2]], null[[0, 2]])
    torch.testing.assert_close(dropped[1], full[1])
    assert emb.null_class == 3


def test_unet_shapes_and_errors():
    net = UNet2D(3, (8, 16, 16), blocks=2, attention=(False, True, True))
    x = torch.randn(2, 3, 16, 12)
    assert net(x, torch.tensor([5, 900])).shape == x.shape
    assert net(x, torch.tensor(7)).shape == x.shape  # one timestep for the whole batch
    cond = torch.randn(2, net.emb_dim)
    assert not torch.allclose(net(x, torch.tensor([5, 9]), cond), net(x, torch.tensor([5, 9])))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 10, 12), torch.tensor([1]))


# --------------------------------------------------------------------------- a toy 2-D distribution


class _ToyNet(nn.Module):
    def __init__(self, emb_dim: int = 64, width: int = 128):
        super().__init__()
        self.emb_dim = emb_dim
        self.time = TimestepMLP(32, emb_dim)
        self.inp = nn.Linear(2, width)
        self.emb = nn.Linear(emb_dim, width)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 2))

    def forward(self, x, t, cond=None):
        e = self.time(t) + (0 if cond is None else cond)
        return self.mlp(self.inp(x.flatten(1)) + self.emb(F.silu(e))).view_as(x)


class ToyDenoiser(Denoiser):
    """The image denoisers' code path (loss, label dropout, guidance, generate) on 2-D points
    stored as (2, 1, 1) 'images' in [0, 1]."""

    name = "toy"

    def build(self):
        net = _ToyNet()
        return net, net.emb_dim


def _train(model, draw, steps: int = 600, seed: int = 0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = model.loss(draw(512, g))[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _modes(n, g):
    y = torch.randint(0, 4, (n,), generator=g)
    return {"x": (MODES[y] + 0.04 * torch.randn(n, 2, generator=g)).view(n, 2, 1, 1), "y": y}


@pytest.fixture(scope="module")
def toy_classes():
    model = ToyDenoiser(image_shape=(2, 1, 1), n_classes=4, label_dropout=0.2,
                        process={"schedule": "linear", "prediction": "epsilon"})
    untrained = ToyDenoiser(image_shape=(2, 1, 1), n_classes=4, label_dropout=0.2)
    return _train(model, _modes), untrained.eval()


def _nearest(points):
    d = torch.cdist(points.view(len(points), 2), MODES)
    return d.argmin(1), d.min(1).values


def test_the_denoiser_learns_a_toy_distribution_and_guidance_steers_its_class(toy_classes):
    model, untrained = toy_classes
    labels = torch.arange(400) % 4
    acc, dist = {}, {}
    for g in (0.0, 1.0, 3.0):
        out = model.generate(400, y=labels, guidance=g, scheduler="dpm", steps=25,
                             generator=torch.Generator().manual_seed(1))
        near, d = _nearest(out)
        acc[g], dist[g] = float((near == labels).float().mean()), float(d.mean())
        if g == 0.0:  # unconditional: the four modes in (about) equal shares
            counts = torch.bincount(near, minlength=4)
            assert counts.min() >= 60, counts
    # 0 = unconditional (chance is 0.25), 1 = conditional, 3 = pushed further: accuracy rises
    assert acc[0.0] < 0.45 and acc[1.0] > 0.9 and acc[3.0] >= acc[1.0] - 0.01, acc
    # samples lie on the modes (std 0.04: mean distance ~0.05); an untrained denoiser's do not
    assert dist[1.0] < 0.09 and dist[3.0] < 0.09, dist
    _, d0 = _nearest(untrained.generate(400, y=labels, steps=25, generator=torch.Generator().manual_seed(1)))
    assert float(d0.mean()) > 2 * dist[1.0]
    # the other samplers agree with DPM-Solver on the learned distribution
    for scheduler, steps in (("ddim", 25), ("ddpm", 200)):
        near, d = _nearest(model.generate(200, y=labels[:200], guidance=1.0, scheduler=scheduler, steps=steps,
                                          generator=torch.Generator().manual_seed(2)))
        assert float((near == labels[:200]).float().mean()) > 0.9 and float(d.mean()) < 0.1, scheduler


def test_a_continuous_condition_goes_through_the_same_embedding():
    def draw(n, g):
        c = torch.rand(n, 1, generator=g)
        x = torch.cat([0.2 + 0.6 * c, torch.full((n, 1), 0.5)], 1) + 0.03 * torch.randn(n, 2, generator=g)
        return {"x": x.view(n, 2, 1, 1), "c": c}

    model = _train(ToyDenoiser(image_shape=(2, 1, 1), n_continuous=1, label_dropout=0.1), draw)
    for value in (0.2, 0.8):
        out = model.generate(200, c=torch.full((200, 1), value), guidance=1.0, scheduler="dpm", steps=25,
                             generator=torch.Generator().manual_seed(0)).view(200, 2)
        assert float(out[:, 0].mean()) == pytest.approx(0.2 + 0.6 * value, abs=0.06)
        assert float(out[:, 1].mean()) == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="without class labels"):
        model.generate(2, y=torch.tensor([0, 1]))


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(toy_classes):
    model, _ = toy_classes
    labels = torch.arange(12) % 4
    state = torch.random.get_rng_state()
    for scheduler in SCHEDULERS:
        kw = dict(y=labels, guidance=2.0, scheduler=scheduler, steps=10)
        a = model.generate(12, generator=torch.Generator().manual_seed(5), **kw)
        b = model.generate(12, generator=torch.Generator().manual_seed(5), **kw)
        c = model.generate(12, generator=torch.Generator().manual_seed(6), **kw)
        assert torch.equal(a, b), scheduler
        assert not torch.allclose(a, c), scheduler
    assert torch.equal(state, torch.random.get_rng_state())
    for bad, said in ((dict(n=-2), "n .the number of images. must be a whole number >= 0, got -2"),
                      (dict(n=2, batch_size=0), "batch_size must be a whole number >= 1, got 0"),
                      (dict(n=2, y=["3", "1"]), "labels must be class indices"),
                      (dict(n=2, y=torch.tensor([2.7, 3.2])), "labels must be class indices")):
        with pytest.raises(ValueError, match=said):
            model.generate(**{"steps": 2, **bad})
    whole = model.generate(2, y=torch.tensor([2.0, 3.0]), steps=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(whole, model.generate(2, y=torch.tensor([2, 3]), steps=2,
                                             generator=torch.Generator().manual_seed(5)))


def test_the_sampling_device_is_chosen_and_the_model_goes_back(toy_classes):
    """Sampling and evaluation draw on the GPU when torch sees one (``auto``), the CPU otherwise; a
    named GPU that is not there is a clear error; the model is back on its device afterwards."""
    from latentbridge.errors import LatentbridgeError
    from latentbridge.tasks.generate import generate
    from latentbridge.utils import inference_device

    model, _ = toy_classes
    gpu = torch.cuda.is_available()
    assert inference_device(None).type == inference_device("auto").type == ("cuda" if gpu else "cpu")
    assert inference_device("cpu") == torch.device("cpu")
    with pytest.raises(LatentbridgeError, match="--device"):
        inference_device("no-such-device")
    if not gpu:
        with pytest.raises(LatentbridgeError, match="no CUDA GPU"):
            inference_device("cuda")
    labels = np.arange(16) % 4
    kw = dict(labels=labels, guidance=2.0, scheduler="ddim", steps=20, seed=3)
    on_cpu, _ = generate(model, 16, device="cpu", **kw)
    assert on_cpu.shape == (16, 2, 1, 1) and on_cpu.dtype == np.float32
    assert next(model.parameters()).device.type == "cpu"
    if gpu:  # the same seed starts from the same noise: the samples agree up to the GPU's arithmetic
        on_gpu, _ = generate(model, 16, device="cuda", **kw)
        assert next(model.parameters()).device.type == "cpu"
        assert np.abs(on_gpu - on_cpu).max() < 0.02
        for scheduler in SCHEDULERS:  # every sampler runs there, DDPM's noise drawn from the CPU generator too
            out, _ = generate(model, 8, labels=labels[:8], scheduler=scheduler, steps=10, device="cuda")
            assert np.isfinite(out).all(), scheduler


def test_ema_averages_the_weights_and_is_what_validation_sees():
    from types import SimpleNamespace

    from latentbridge.training.callbacks import EMA

    lin = nn.Linear(2, 1, bias=False)
    lin.weight.data.fill_(1.0)
    module = SimpleNamespace(model=lin)
    # warm-up: update n uses min(decay, (1 + n) / (10 + n)): 0.1, then 2/11
    warm = EMA(0.9)
    warm.on_fit_start(None, module)
    for value in (2.0, 3.0):
        lin.weight.data.fill_(value)
        warm.on_train_batch_end(None, module, None, None, 0)
    first = 0.1 * 1.0 + 0.9 * 2.0
    torch.testing.assert_close(warm.shadow["weight"], torch.full((1, 2), 2 / 11 * first + 9 / 11 * 3.0))
    assert warm.updates == 2 and warm.current_decay() == pytest.approx(3 / 12)
    lin.weight.data.fill_(1.0)
    ema = EMA(0.9, warmup=False)
    ema.on_fit_start(None, module)
    for value in (2.0, 3.0):
        lin.weight.data.fill_(value)
        ema.on_train_batch_end(None, module, None, None, 0)
    # 0.9 * (0.9 * 1 + 0.1 * 2) + 0.1 * 3 = 1.29
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 1.29))
    trainer = SimpleNamespace(sanity_checking=False)
    ema.on_validation_epoch_start(trainer, module)
    torch.testing.assert_close(lin.weight.data, torch.full((1, 2), 1.29))
    ema.on_validation_epoch_end(trainer, module)
    torch.testing.assert_close(lin.weight.data, torch.full((1, 2), 3.0))
    with pytest.raises(ValueError):
        EMA(1.0)
    # a buffer (a fitted statistic: a latent diffusion's standardisation) is copied, not averaged
    lin.register_buffer("shift", torch.zeros(2))
    ema = EMA(0.9, warmup=False)
    ema.on_fit_start(None, module)
    lin.shift.fill_(5.0)
    ema.on_train_batch_end(None, module, None, None, 0)
    torch.testing.assert_close(ema.shadow["shift"], torch.full((2,), 5.0))
    # BatchNorm's running statistics are averaged with the weights (the raw model's were paired with the averaged
    # weights); its count of batches is copied
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    module = SimpleNamespace(model=net)
    ema = EMA(0.9, warmup=False)
    ema.on_fit_start(None, module)
    before = net[1].running_mean.clone()
    net.train()
    net(torch.randn(16, 2) + 4.0)
    ema.on_train_batch_end(None, module, None, None, 0)
    torch.testing.assert_close(ema.shadow["1.running_mean"], 0.9 * before + 0.1 * net[1].running_mean)
    torch.testing.assert_close(ema.shadow["1.running_var"], 0.9 * torch.ones(3) + 0.1 * net[1].running_var)
    assert int(ema.shadow["1.num_batches_tracked"]) == 1


# --------------------------------------------------------------------------- metrics


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    v1, v2 = np.array([1.0, 2.0, 0.5]), np.array([4.0, 0.5, 0.5])
    exact = float(((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum())
    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(exact, rel=1e-9)
    # from samples (rotated, so the covariances are not diagonal): the estimate converges to the exact value
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    a = rng.standard_normal((200_000, 3)) * np.sqrt(v1) @ q.T + mu1 @ q.T
    b = rng.standard_normal((200_000, 3)) * np.sqrt(v2) @ q.T + mu2 @ q.T
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    mu, cov = gaussian_stats(a[:10])
    assert mu.shape == (3,) and cov.shape == (3, 3)
    with pytest.raises(ValueError):
        gaussian_stats(a[:1])


def test_frechet_distance_agrees_with_torchmetrics():
    tm = pytest.importorskip("torchmetrics.image.fid")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((500, 8)), rng.standard_normal((400, 8)) * 1.5 + 0.3
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    ref = float(tm._compute_fid(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2),
                                torch.from_numpy(s2)))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_precision_and_recall_tell_fidelity_from_coverage():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((600, 4))
    same = precision_recall(real, real.copy(), k=3)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    other = precision_recall(real, rng.standard_normal((600, 4)), k=3)
    assert other["precision"] > 0.8 and other["recall"] > 0.8
    far = precision_recall(real, rng.standard_normal((600, 4)) + 20, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # mode collapse: faithful copies of three real samples cover little of the data
    collapsed = np.repeat(real[:3], 20, axis=0) + 0.01 * rng.standard_normal((60, 4))
    pr = precision_recall(real, collapsed, k=3)
    assert pr["precision"] == 1.0 and pr["recall"] < 0.05
    with pytest.raises(ValueError):
        precision_recall(real, real[:3], k=3)


def test_pixel_features_average_areas():
    x = np.zeros((2, 1, 32, 32), np.float32)
    x[1, :, :16] = 1.0
    f = pixel_features(x, side=4)
    assert f.shape == (2, 16)
    np.testing.assert_allclose(f[1].reshape(4, 4), np.repeat([[1.0], [1.0], [0.0], [0.0]], 4, axis=1))


def test_unconditional_and_conditional_denoisers_share_one_code_path():
    from latentbridge.models.denoisers import DDPMUNet

    proc = {"schedule": "cosine", "prediction": "v_prediction"}
    uncond = DDPMUNet(image_shape=(1, 8, 8), n_classes=0, process=proc, channels=[4, 8])
    assert uncond.cond.classes is None and not uncond.conditional
    batch = uncond.example_batch(3, torch.Generator().manual_seed(0))
    assert set(batch) == {"x"} and uncond.loss(batch)[0].shape == (3,)
    x = uncond.generate(2, steps=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    with pytest.raises(ValueError, match="without class labels"):
        uncond.generate(2, y=torch.tensor([0, 1]), steps=2)
    cond = DDPMUNet(image_shape=(1, 8, 8), n_classes=3, process=proc, channels=[4, 8]).eval()
    with pytest.raises(ValueError, match="labels must be 2 values in 0..2"):
        cond.generate(2, y=torch.tensor([0, 3]), steps=2)
    # the null class and label dropout: a dropped label gives the unconditional prediction
    xt, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 500])
    y = torch.tensor([0, 2])
    torch.testing.assert_close(cond(xt, t, y, None, torch.tensor([True, True])), cond(xt, t, torch.tensor([3, 3])))
    assert not torch.allclose(cond(xt, t, y), cond(xt, t, torch.tensor([3, 3])))
    # configs round-trip through config() (what a model folder saves)
    again = DDPMUNet(**cond.config())
    assert again.config() == cond.config() and again.process == cond.process


def test_sampling_batches_fit_in_the_memory_and_give_the_same_images(monkeypatch):
    """250 images of 128 x 128 at a time took 9.3 GB for a model of 285 KB (sample, evaluate and training's figures):
    a batch's activations now stay within a quarter of the free memory; the images are the same."""
    import latentbridge.errors as errors
    from latentbridge.models.denoisers import DDPMUNet
    from latentbridge.tasks.generate import generate

    model = DDPMUNet(image_shape=(3, 64, 64), n_classes=2, process={}, channels=[8, 16], groups=4).eval()
    per = model.image_activation_bytes()
    assert 64 * 64 * 8 * 4 * 10 < per < 64 * 64 * 8 * 4 * 100  # dozens of feature maps of the first level
    monkeypatch.setattr(errors, "available_memory", lambda: int(100 * per))
    assert model.sampling_batch(250) == 25 and model.sampling_batch(250, guided=True) == 12
    assert model.sampling_batch(8) == 8 and model.sampling_batch(250, guided=True) >= 1
    batches = []
    real = model.generate
    monkeypatch.setattr(model, "generate", lambda *a, **k: batches.append(k["batch_size"]) or real(*a, **k))
    capped, _ = generate(model, 13, labels=np.arange(13) % 2, steps=2, seed=1, batch_size=250, device="cpu")
    assert batches == [12]
    monkeypatch.setattr(errors, "available_memory", lambda: 2**40)
    whole, _ = generate(model, 13, labels=np.arange(13) % 2, steps=2, seed=1, batch_size=250, device="cpu")
    assert batches[0] == 12 and batches[1] >= 13  # (all in one batch)
    assert float(np.abs(capped - whole).max()) < 1e-4, float(np.abs(capped - whole).max())  # the same images


def test_sample_grids_of_many_classes_show_twenty_spread_over_them():
    """With 300 class folders every grid drew 8 samples of each class (2 x 2,400 per training): 142 of a 151-s epoch."""
    from latentbridge.tasks.diffusion import grid_columns, grid_labels

    assert grid_labels(2, 3).tolist() == [0, 1, 2, 0, 1, 2] and grid_columns(3) == 3
    labels = grid_labels(8, 300)
    assert grid_columns(300) == 20 and len(labels) == 160
    assert labels[:20].tolist()[0] == 0 and labels[:20].tolist()[-1] == 299 and len(set(labels.tolist())) == 20
    assert grid_labels(8, 0) is None and grid_columns(0) == 10


def test_sampling_a_model_folder_from_python_names_bad_counts(tmp_path):
    """``tasks.generate.sample_saved`` (the server's and notebooks' call) refuses what the CLI refuses: steps 0 ran
    the run's own steps, a batch size of 0 divided by zero, a negative count a message of labels."""
    from conftest import tiny_generative_folders

    from latentbridge.errors import LatentbridgeError
    from latentbridge.models.hub import load_model
    from latentbridge.tasks.generate import generate, sample_saved

    saved = load_model(tiny_generative_folders(tmp_path)["ddpm"])
    for kw, said in ((dict(n=2, steps=0), "--steps must be a whole number of at least 1, got 0"),
                     (dict(n=-1), "--num-samples must be at least 1, got -1"),
                     (dict(n=2, batch_size=0), "--batch-size must be at least 1, got 0"),
                     (dict(n=2, steps=2.5), "--steps must be a whole number of at least 1, got 2.5")):
        with pytest.raises(LatentbridgeError, match=said):
            sample_saved(saved, **kw)
    for g in (-1.0, float("nan")):  # -1 sampled; NaN was blamed on the steps and the scheduler
        with pytest.raises(ValueError, match=f"guidance: a strength must be a finite number >= 0, got {g}"):
            sample_saved(saved, 2, steps=2, guidance=g)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        generate(saved.model, 2, steps=2, batch_size=0)
    assert sample_saved(saved, 2, steps=2).images.shape == (2, 1, 28, 28)
