"""Config sections of the spatial-map workflow (conditional VAE over imaging sections): plain pydantic
models, no torch; re-exported by :mod:`latentbridge.config.sections`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from latentbridge.config.sections import Section

# ----------------------------------------------------------------------------- spatial maps


class SpatialDataConfig(Section):
    """Sections of spatial maps (mass-spectrometry imaging): imzML files or (H, W, C) arrays."""

    root: str | None = None
    """A folder written by ``latentbridge data synth tissue`` (its ``manifest.json`` lists the sections
    and their train/test split), a folder of ``.imzML`` files or of array files (``.npy``, ``.npz``,
    ``.tif``), or one such file."""
    format: Literal["auto", "arrays", "imzml"] = "auto"
    """``auto``: a synthetic folder's arrays, else the folder's imzML files if it has any, else its arrays;
    ``imzml`` reads a synthetic folder's imzML files instead (the reader end to end)."""
    mz: list[float] | None = None
    """m/z values to image from imzML files (default: a synthetic folder's list); labels for arrays. Each a finite
    number above 0; each once for a new training (:func:`latentbridge.tasks.spatial.fit`: a model saved with one twice
    still loads)."""

    @field_validator("mz")
    @classmethod
    def _mz_values(cls, v):
        if v is None:
            return v
        if bad := [m for m in v if not (math.isfinite(m) and m > 0)]:  # NaN crashed the reader with an IndexError
            raise ValueError(f"{', '.join(f'{m:g}' for m in bad)}: an m/z must be a finite number above 0")
        return v
    tolerance: float = Field(10.0, gt=0)
    tolerance_unit: Literal["ppm", "da"] = "ppm"
    normalization: Literal["none", "tic", "rms"] = "none"
    """Per-pixel normalisation (total ion count, root mean square): over each pixel's whole spectrum when every
    section is imzML, else over the channels (an array holds no spectrum). The model records which
    (``normalized_over``); ``enhance`` and ``evaluate`` divide their inputs alike, and refuse an array for a model
    normalised by whole spectra."""
    test_sections: list[str] | None = None
    """Names (file stems) of sections held out for ``evaluate``; default: a synthetic folder's test split."""
    val_fraction: float = Field(0.15, ge=0.0, lt=0.5)
    """Share of the training sections held out for validation (checkpoint choice, uncertainty
    calibration; at least one when there are three or more); 0 or fewer than three sections:
    validation patches come from the training sections."""
    scaling: Literal["std", "noise"] = "std"
    """Per-channel scale of the normalisation: the standard deviation of the training pixels, or the
    channel's estimated noise level (the squared error then weighs channels by signal-to-noise)."""
    target: Literal["measured", "clean"] = "measured"
    """What the model learns to output: the measured maps (self-supervised: no clean map needed, any
    imzML works) or the clean maps (``NAME.truth.npy``, e.g. the synthetic sections: supervised)."""


class PatchConfig(Section):
    """Training patches and whole-section tiling of the spatial workflow."""

    size: int = Field(32, ge=8)
    """Patch (and tile) size in pixels; a multiple of 2."""
    per_epoch: int = Field(2048, gt=0)
    """Random training patches drawn per epoch."""
    val_patches: int = Field(256, gt=0)
    min_valid: float = Field(0.25, ge=0.0, le=1.0)
    """A patch must have at least this share of valid pixels."""
    denoise: float = Field(0.4, ge=0)
    """Relative frequency of training patches given as they are (every valid pixel observed)."""
    inpaint: float = Field(0.3, ge=0)
    """... with pixels hidden from the input (random pixels, blobs, scan-line gaps) to be filled."""
    upscale: float = Field(0.3, ge=0)
    """... given as 2 x 2 block means (the input of 2x upscaling)."""
    hide_fraction: tuple[float, float] = (0.05, 0.35)
    """Range of the share of valid pixels hidden from an inpainting patch."""
    overlap: int = Field(8, ge=0)
    """Overlap of neighbouring tiles when a whole section is enhanced (blended with a smooth window)."""
    samples: int = Field(8, ge=1)
    """Latent samples drawn per tile for the uncertainty of enhanced maps."""
    batch_tiles: int = Field(32, gt=0)
    """Tiles per forward pass when enhancing a section (memory: a batch of tiles, never the section)."""


class SpatialLossWeights(Section):
    """Weights of the conditional VAE's loss terms besides the MSE (0 switches a term off)."""

    bounds: float = Field(1.0, ge=0)
    """Penalty on outputs outside the training data's range (per channel)."""
    latent_l1: float = Field(1e-3, ge=0)
    spatial: float = Field(0.0, ge=0)
    """Spatial consistency: inverse-distance weighted differences of the output to its k nearest pixels."""
    spatial_k: int = Field(8, ge=1)
    spatial_eps: float = Field(0.5, gt=0)
    """Epsilon of the weights ``1 / (d + eps)``, d in pixels."""
    free_nats: float = Field(0.0, ge=0)
    """Progressive KL: nats per latent element free of cost at step 0, falling to 0 over ``free_nats_steps``."""
    free_nats_steps: int = Field(0, ge=0)
    uncertainty: float = Field(1.0, ge=0)
    """Gaussian NLL of the decoder's variance head (its gradient does not reach the mean)."""
