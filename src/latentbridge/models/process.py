"""The diffusion process: noise schedules, training targets and samplers, all from diffusers'
schedulers. It holds no weights; a denoiser holds no schedule.

:class:`DiffusionProcess` is a plain description (schedule, prediction type, timesteps, betas,
clipping) that builds diffusers schedulers on demand:

- training: :meth:`DiffusionProcess.diffuse` draws timesteps and noise, noises clean samples with
  ``DDPMScheduler.add_noise`` and returns the target (the noise, or ``get_velocity``);
- sampling: :meth:`DiffusionProcess.sample` runs ``DDPMScheduler`` (ancestral, any number of
  steps), ``DDIMScheduler`` or ``DPMSolverMultistepScheduler`` (DPM-Solver++ 2M) over any
  denoiser callable ``fn(x_t, t) -> output``, seeded by a ``torch.Generator`` (never the global
  RNG).

:func:`guided` turns a conditional denoiser into classifier-free guidance: ``u + w (c - u)``
with ``u`` the prediction under the null condition, ``c`` the conditional one; ``w = 0`` is
unconditional, ``w = 1`` conditional (one pass each), other values batch both in one pass.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from typing import Any, Callable

import torch
from torch import Tensor

from latentbridge.utils import first_time

log = logging.getLogger(__name__)
SCHEDULERS = ("ddpm", "ddim", "dpm")


@cache
def _ddim_scheduler_class():
    """diffusers' DDIM scheduler, with two corrections.

    Each step goes to the next timestep of the sequence: diffusers steps from ``t`` to ``t - T // steps``, which with
    trailing spacing is the next timestep only where ``steps`` divides ``T`` (7 steps of 1000: 999 -> 857 where the
    model is next asked at 856, and the last step to ``alpha_bar_0``, not 1, leaving 0.01 of noise in every sample;
    372 of the 1000 step counts). And its step variance is kept below ``1 - alpha_bar_prev``, which it never exceeds
    in exact arithmetic: from the last training timestep of a cosine schedule (``alpha_bar`` 2e-9) with ``eta`` 1
    the two are equal, float32 put the square root's argument at -6e-8, and every sample came out NaN (blank images
    with exit 0)."""
    from diffusers import DDIMScheduler
    from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
    from diffusers.utils.torch_utils import randn_tensor

    class DDIM(DDIMScheduler):
        def _get_variance(self, timestep, prev_timestep):
            v = super()._get_variance(timestep, prev_timestep)
            a_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
            return torch.minimum(v, (1 - a_prev) * (1 - 1e-5))

        def step(self, model_output, timestep, sample, eta: float = 0.0, use_clipped_model_output: bool = False,
                 generator=None, return_dict: bool = True, **_):
            """DDIM's update (Song et al. 2021, eqs. 12 and 16) from ``timestep`` to the next of ``timesteps``."""
            later = self.timesteps[self.timesteps < int(timestep)]
            prev = int(later.max()) if len(later) else -1
            a_t = self.alphas_cumprod[int(timestep)]
            a_prev = self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod
            b_t = 1 - a_t
            if self.config.prediction_type == "epsilon":
                x0, eps = (sample - b_t ** 0.5 * model_output) / a_t ** 0.5, model_output
            else:  # v_prediction
                x0 = a_t ** 0.5 * sample - b_t ** 0.5 * model_output
                eps = a_t ** 0.5 * model_output + b_t ** 0.5 * sample
            if self.config.clip_sample:
                x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
            std = eta * self._get_variance(int(timestep), prev) ** 0.5
            if use_clipped_model_output:  # the noise re-derived from the clipped clean sample
                eps = (sample - a_t ** 0.5 * x0) / b_t ** 0.5
            x = a_prev ** 0.5 * x0 + (1 - a_prev - std ** 2) ** 0.5 * eps
            if eta > 0:
                x = x + std * randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                           dtype=model_output.dtype)
            return DDIMSchedulerOutput(prev_sample=x, pred_original_sample=x0) if return_dict else (x, x0)

    return DDIM


@cache
def _dpm_scheduler_class():
    """diffusers' DPM-Solver++ with its clean estimate clipped to ``[-sample_max_value, sample_max_value]`` where
    ``thresholding`` is on, as the DDIM and DDPM samplers clip it. diffusers' dynamic thresholding divides by the
    threshold, which maps every estimate into [-1, 1]: the same at a clip of 1, but with ``clip_sample`` 2 an oracle's
    clean images of up to 1.8 came out within 1, with 0.5 doubled."""
    from diffusers import DPMSolverMultistepScheduler

    class DPM(DPMSolverMultistepScheduler):
        def _threshold_sample(self, sample):
            return sample.clamp(-self.config.sample_max_value, self.config.sample_max_value)

    return DPM


Denoise = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class DiffusionProcess:
    """Forward process and samplers (diffusers' schedulers configured alike)."""

    schedule: str = "linear"
    prediction: str = "epsilon"
    train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    clip_sample: float | None = 1.0

    def __post_init__(self):
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        if self.prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction must be 'epsilon' or 'v_prediction', got {self.prediction!r}")
        if int(self.train_timesteps) < 2:
            raise ValueError("train_timesteps must be >= 2")

    @classmethod
    def from_config(cls, d: dict[str, Any] | None) -> "DiffusionProcess":
        return cls(**(d or {}))

    def config(self) -> dict[str, Any]:
        return asdict(self)

    # --- schedulers --------------------------------------------------------------------
    def _common(self) -> dict[str, Any]:
        return dict(num_train_timesteps=int(self.train_timesteps), beta_start=float(self.beta_start),
                    beta_end=float(self.beta_end),
                    beta_schedule="linear" if self.schedule == "linear" else "squaredcos_cap_v2",
                    prediction_type=self.prediction)

    def _clip(self) -> dict[str, Any]:
        return dict(clip_sample=self.clip_sample is not None, clip_sample_range=float(self.clip_sample or 1.0))

    def scheduler(self, kind: str = "ddim", steps: int | None = None):
        """A fresh diffusers scheduler of ``kind`` (``ddpm``, ``ddim``, ``dpm``) set to ``steps``
        sampling steps (default: every training timestep). Steps are spread over the training
        timesteps with ``trailing`` spacing, so every sampler starts from the last timestep."""
        from diffusers import DDPMScheduler

        steps = int(self.train_timesteps if steps is None else steps)
        if not 1 <= steps <= self.train_timesteps:
            raise ValueError(f"steps must be in 1..{self.train_timesteps}, got {steps}")
        if kind == "ddpm":
            s = DDPMScheduler(**self._common(), **self._clip(), timestep_spacing="trailing")
        elif kind == "ddim":
            s = _ddim_scheduler_class()(**self._common(), **self._clip(), timestep_spacing="trailing",
                                        set_alpha_to_one=True)
        elif kind == "dpm":  # clipping is DPM-Solver++'s thresholding, a clip at the clip value (_dpm_scheduler_class)
            clip = dict(thresholding=True, sample_max_value=float(self.clip_sample)) \
                if self.clip_sample is not None else {}
            s = _dpm_scheduler_class()(**self._common(), algorithm_type="dpmsolver++", solver_order=2,
                                       timestep_spacing="trailing", lower_order_final=True, **clip)
        else:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {kind!r}")
        with warnings.catch_warnings():  # diffusers' numpy 2 copy-keyword notice (DPM-Solver sigmas)
            warnings.simplefilter("ignore", DeprecationWarning)
            s.set_timesteps(steps)
        return s

    @cached_property
    def _train_scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(**self._common())

    @property
    def alphas_cumprod(self) -> Tensor:
        """``alpha_bar_t`` for t = 0..T-1 (float32)."""
        return self._train_scheduler.alphas_cumprod.clone()

    # --- training ----------------------------------------------------------------------
    def diffuse(self, x0: Tensor, generator: torch.Generator | None = None,
                t: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_t, t, target)`` for clean samples ``x0``: uniform timesteps (unless given), Gaussian
        noise, ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise`` and the target the
        denoiser learns (the noise, or the velocity)."""
        s = self._train_scheduler
        b = x0.shape[0]
        if t is None:
            t = torch.randint(0, int(self.train_timesteps), (b,), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        x_t = s.add_noise(x0, noise, t)
        target = noise if self.prediction == "epsilon" else s.get_velocity(x0, noise, t)
        return x_t, t, target

    def predict_x0(self, x_t: Tensor, t: Tensor, output: Tensor) -> Tensor:
        """The clean sample implied by a denoiser ``output`` at timesteps ``t``."""
        a = self.alphas_cumprod.to(x_t.device)[t.long()].reshape(-1, *([1] * (x_t.dim() - 1)))
        if self.prediction == "epsilon":
            return (x_t - (1 - a).sqrt() * output) / a.sqrt()
        return a.sqrt() * x_t - (1 - a).sqrt() * output

    # --- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, denoise: Denoise, shape: tuple[int, ...], *, scheduler: str = "ddim", steps: int | None = 50,
               generator: torch.Generator | list[torch.Generator] | None = None, eta: float = 0.0,
               noise: Tensor | None = None,
               progress: Callable[[int], None] | None = None, device=None, guidance: float | None = None) -> Tensor:
        """Samples of ``shape`` from ``denoise(x_t, t)`` (``t``: a 0-d long tensor) with the named
        scheduler, on ``device`` (default: the CPU). ``noise``: the starting point (default: drawn
        from ``generator``, a CPU generator, so that a seed starts from the same noise on every
        device; a list of them: one a sample, for every step's noise, ``noise`` then given); ``progress(1)`` is called
        after every step. ``guidance``: the strongest guidance ``denoise`` applies,
        named where the samples come out non-finite (1e38 overflowed, and the error advised other steps)."""
        if not 0.0 <= float(eta) <= 1.0:  # NaN included: outside, DDIM's noise outgrows its step (blank samples)
            raise ValueError(f"eta must be in [0, 1] (0 deterministic, 1 DDPM-like noise), got {eta}")
        if eta and scheduler != "ddim" and first_time(("eta", scheduler)):
            log.warning("eta %g is DDIM's noise; the %s scheduler has none and ignores it", eta, scheduler)
        s = self.scheduler(scheduler, steps)
        if noise is None:
            noise = torch.randn(shape, generator=generator)
        elif tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise of shape {tuple(noise.shape)} given for samples of shape {tuple(shape)}")
        x = noise.to(device or noise.device) * s.init_noise_sigma
        for t in s.timesteps:
            out = denoise(s.scale_model_input(x, t), t)
            if scheduler == "ddim":  # the noise re-derived from the clipped clean sample keeps the step consistent
                x = s.step(out, t, x, eta=eta, generator=generator,
                           use_clipped_model_output=self.clip_sample is not None).prev_sample
            else:
                x = s.step(out, t, x, generator=generator).prev_sample
            if progress is not None:
                progress(1)
        if not torch.isfinite(x).all():  # never written as blank images
            from latentbridge.errors import LatentbridgeError

            strong = guidance is not None and abs(guidance) > STRONG_GUIDANCE
            raise LatentbridgeError(f"the {scheduler} sampler gave non-finite values ({len(s.timesteps)} steps, eta "
                                    f"{eta:g}" + ("" if guidance is None else f", guidance {guidance:g}") + "): try "
                                    + ("a smaller --guidance (a guidance this strong overflows)" if strong else
                                       "other --steps or --scheduler"))
        return x


#: a guidance beyond this is named as the cause of non-finite samples (strengths of 1-10 are the usual ones)
STRONG_GUIDANCE = 100.0


def guided(forward: Callable[..., Tensor], y: Tensor | None, c: Tensor | None, guidance: float,
           conditional: bool) -> Denoise:
    """``fn(x_t, t)`` of a conditional ``forward(x, t, y, c, drop)`` with classifier-free guidance
    ``guidance`` (see the module notes); ``conditional=False``: the null condition only."""
    g = float(guidance)

    def expand(t: Tensor, n: int, device) -> Tensor:
        return (t.reshape(-1).expand(n) if t.numel() == 1 else t).to(device)

    def fn(x: Tensor, t: Tensor) -> Tensor:
        if not conditional or g == 0.0:
            return forward(x, expand(t, x.shape[0], x.device), y, c,
                           torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
        if g == 1.0:
            return forward(x, expand(t, x.shape[0], x.device), y, c, None)
        n = x.shape[0]
        drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]).to(x.device)
        both = forward(torch.cat([x, x]), expand(t, 2 * n, x.device), None if y is None else torch.cat([y, y]),
                       None if c is None else torch.cat([c, c]), drop)
        cond, uncond = both[:n], both[n:]
        return uncond + g * (cond - uncond)

    return fn
