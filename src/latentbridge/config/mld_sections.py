"""Config sections of multimodal latent diffusion (first stages, forward process, sampler, evaluation): plain
pydantic models, no torch; re-exported by :mod:`latentbridge.config.sections`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from latentbridge.config.sections import BridgeDataConfig, DiffusionConfig, SamplingConfig, Section


class MLDSamplingConfig(SamplingConfig):
    """Multimodal latent diffusion's sampler: guidance may differ by the modality generated."""

    guidance: float | dict[str, float] = 1.0
    """One strength for every direction, or one per generated modality (e.g. ``{image: 4, audio: 8}``:
    images drawn from a spoken digit with 4, audio from a written digit with 8; a modality left out: 1)."""
    postfilter: bool = True
    """Pass decoded log-mels through the audio stage's global-variance post-filter (fitted when the stage
    is trained; :mod:`latentbridge.transforms.postfilter`); false: the decoder's raw output."""

    @field_validator("guidance")
    @classmethod
    def _non_negative(cls, v):
        from latentbridge.sampling_args import guidance_problem

        if problem := guidance_problem(v):
            raise ValueError(problem)
        return v


class MLDDataConfig(BridgeDataConfig):
    """Paired data of a multimodal latent diffusion model: the bridge (vibration windows and crack
    masks; ``root`` and the state split as in the multimodal workflow) or the digits (FSDD clips
    paired with MNIST images: the ``digits`` section; ``val_fraction`` of the training clips)."""

    kind: Literal["bridge", "digits"] = "digits"


class RecordedConditionsConfig(Section):
    """A digits stage's encoder aligned with the conditions users hand over: with ``copies`` > 0, once the stage
    is trained, its encoder (not its decoder) is fine-tuned (:func:`latentbridge.training.align.align_encoder`)
    so that that many copies of each training example encode to the example's own latent — spoken digits as a
    recorder hands them over (:func:`latentbridge.data.digits.as_recorded_clips`) for the audio stage, written
    digits from other sources (:func:`latentbridge.data.digits.as_written_copies`) for the image stage."""

    copies: int = Field(0, ge=0)
    share: float = Field(0.5, ge=0, le=1)
    """The share of alignment examples that show a recorded copy instead of the clip itself."""
    epochs: int = Field(15, ge=1)
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(64, ge=1)


class FirstStageConfig(Section):
    """The frozen first stages of a multimodal latent diffusion model (trained first when ``run`` is unset)."""

    run: str | None = None
    """Reuse trained first stages: a multimodal model folder, a folder holding one model folder per
    key of ``stages`` (e.g. ``OTHER_MLD_RUN/first_stage``), or an MLD run."""
    stages: dict[str, dict] = Field(default_factory=dict)
    """Each first-stage model's workflow config (composable: ``{base: preset.yaml, ...}``), by key:
    ``multimodal`` (one multimodal model serves every modality) or one key per modality (a
    single-modality autoencoder each); bridge: ``supervised`` beside ``multimodal`` (a spec2mask network
    with a mask stage). The MLD's data sections are applied to them; a key set to null is dropped
    (``-o first_stage.stages.supervised=null``)."""

    @field_validator("stages", mode="before")
    @classmethod
    def _drop_null(cls, v):
        return {k: x for k, x in v.items() if x is not None} if isinstance(v, dict) else v
    recorded: RecordedConditionsConfig = Field(default_factory=RecordedConditionsConfig)
    """Digits: the audio stage's encoder aligned with recorded copies of its clips (``copies`` 0: not)."""
    written: RecordedConditionsConfig = Field(default_factory=RecordedConditionsConfig)
    """Digits: the image stage's encoder aligned with written copies of its digits (``copies`` 0: not)."""


class MLDDiffusionConfig(DiffusionConfig):
    """The forward process over the concatenated, std-scaled latents and multi-time masking."""

    schedule: Literal["linear", "cosine"] = "cosine"
    prediction: Literal["epsilon", "v_prediction"] = "v_prediction"
    """The velocity by default: the last timestep keeps ``alpha_bar`` ~ 1e-9 (cosine) to 4e-5 (linear),
    and the clean latent implied by a *noise* prediction there, ``(x_t - sigma_t eps) / alpha_t``,
    multiplies the prediction's error by up to 2e4; with clipping off (latents are unbounded) the
    first sampling steps then throw samples far off the data (``x0 = alpha_t x_t - sigma_t v`` does not)."""
    clip_sample: float | None = Field(None, gt=0)
    """Clip the predicted clean latent to [-v, v] while sampling (latents have unit std); None: off."""
    condition_share: float = Field(0.5, ge=0, lt=1)
    """Training: share of samples in which a random non-empty proper subset of the modalities is
    kept clean (timestep "clean": the condition) and only the others are noised and scored; the
    rest are noised jointly at one timestep. ``conditional: false`` sets it to 0 (joint model only)."""
    label_dropout: float = Field(0.1, ge=0, le=1)
    """Training: share of the clean (condition) modalities replaced by the null input, so one model
    also gives the prediction without the condition (classifier-free guidance)."""
    standardise: bool = False
    """Standardise every latent entry by its training mean and std inside the denoiser (its
    statistics are saved with it); off: each modality's latents divided by one training std."""


class MLDEvalConfig(Section):
    samples_per_condition: int = Field(8, gt=0)
    """Samples drawn per condition: bridge masks are their mean crack probability; digits: the per-input diversity."""
    diversity_inputs: int = Field(50, gt=0)
    """Digits: test inputs whose ``samples_per_condition`` samples give the per-input diversity."""
    max_pairs: int | None = Field(None, gt=0)
    """Digits: evaluate at most this many test pairs (a seeded subset; default: all)."""
    max_wav_pairs: int = Field(600, gt=0)
    """Digits: image → wav pairs read by the waveform judge (a seeded subset)."""
    gl_iterations: int = Field(32, gt=0)
    embedding: Literal["umap", "tsne", "pca"] = "umap"
    """Bridge: the 2-D map of real vs generated latents (``pca``: no UMAP compilation, for quick checks)."""
