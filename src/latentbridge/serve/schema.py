"""What the OpenAPI schema at ``/openapi.json`` says of errors and keys, so that clients generated from it read them.

Every error the server sends is ``{"detail": ...}``: a sentence (an upload that cannot be read names the client's file;
a missing model lists the served ones), or, for a request whose fields could not be read, one entry per problem with
its place and message. FastAPI's default schema documented only its own 422 body (``HTTPValidationError``, whose
``detail`` is always a list) and no key at all, so a client generated from it failed to parse the server's 422
sentences and sent requests without the key the server wanted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from fastapi import FastAPI
from pydantic import BaseModel, Field

from latentbridge.serve.security import COOKIE

__all__ = ["Problem", "ScoreResponse", "PredictResponse", "SampleResponse", "EnhanceResponse", "errors",
           "document_api_key"]


class FieldProblem(BaseModel):
    """One field of a request that could not be read: where (``["body", "seed"]``) and what."""

    loc: list[str]
    msg: str
    type: str


class Problem(BaseModel):
    """An error: what went wrong, in a sentence, or the request's unreadable fields."""

    detail: str | list[FieldProblem]


class ScoredWindow(BaseModel):
    start_s: float
    end_s: float
    score: float
    is_anomaly: bool


class ScoreResponse(BaseModel):
    """An uploaded recording's scores: every window's and the file's, against the model's threshold."""

    model: str
    file: str
    sample_rate: int
    duration_s: float
    window_s: float
    hop_s: float
    padded: bool
    score: str
    aggregate: str
    threshold: float
    windows: list[ScoredWindow]
    n_windows: int
    n_anomalous_windows: int
    file_score: float
    is_anomaly: bool
    decision: Literal["normal", "anomalous"]
    warnings: list[str]
    timing_ms: dict[str, float]
    input: dict[str, Any]
    """The upload as recorded: ``sample_rate`` and ``channels`` (its header's), and ``conversions``: how it was brought
    to the model's input (resampled, mixed down or a channel read; None when it needed nothing)."""
    spectrogram: dict[str, Any] | None = None
    """With ``?spectrogram=true``: the model's spectrogram of the recording for display (dB rows, low to high)."""


class MaskPrediction(BaseModel):
    """A vibration recording's crack mask (multimodal bridge models): PNGs in base64, the damage extent per window."""

    model: str
    file: str
    kind: Literal["vibration_to_mask"]
    damage_extent: float
    window_damage_extent: list[float]
    window_starts_s: list[float]
    n_windows: int
    sample_rate: float
    n_channels: int
    mask_threshold: float | None = None
    crack_fraction: float
    mask_shape: list[int]
    mask_png: str
    mask_probability_png: str
    mask_full_png: str | None = None
    """The mask at the size of the model's training labels (bilinear, then thresholded); absent for older models."""
    mask_full_shape: list[int] | None = None
    warnings: list[str] = []
    """What the reader said of the file (the same words as the command line's warnings)."""


class ImagePrediction(BaseModel):
    """The written digit an audio-visual model draws for an uploaded spoken digit (PNG in base64)."""

    model: str
    file: str
    kind: Literal["audio_to_image"]
    route: Literal["posterior", "bridge"]
    image_png: str
    image_shape: list[int]
    spectrogram_png: str
    warnings: list[str] = []
    """What the reader said of the file (the same words as the command line's warnings)."""


class AudioPrediction(BaseModel):
    """The spoken digit an audio-visual model says for an uploaded image (WAV in base64, through Griffin-Lim)."""

    model: str
    file: str
    kind: Literal["image_to_audio"]
    route: Literal["posterior", "bridge"]
    sample_rate: int
    duration_s: float
    wav: str
    input_image_png: str
    spectrogram_png: str
    warnings: list[str] = []
    """What the reader said of the file (the same words as the command line's warnings)."""


PredictResponse = Annotated[Union[MaskPrediction, ImagePrediction, AudioPrediction], Field(discriminator="kind")]


class PairSamples(BaseModel):
    """Seeded pairs drawn from an audio-visual model's prior: images (PNG) and spoken digits (WAV), in base64."""

    model: str
    seed: int
    n: int
    sample_rate: int
    images_png: list[str]
    wavs: list[str]


class ImageSamples(BaseModel):
    """Seeded images of a diffusion model (PNG in base64) with the sampler's settings."""

    model: str
    n: int
    scheduler: str
    steps: int
    guidance: float | None  # (None: nothing to guide towards, an unconditional model)
    seed: int
    eta: float
    n_samples: int
    seconds: float
    labels: list[int] | None = None
    class_names: list[str] | None = None
    conditions: list[list[float]] | None = None
    image_shape: list[int]
    images_png: list[str]


SampleResponse = Union[ImageSamples, PairSamples]


class EnhancedPanel(BaseModel):
    channel: int
    label: str
    input_png: str
    enhanced_png: str
    uncertainty_png: str


class EnhanceResponse(BaseModel):
    """A spatial section enhanced: the arrays as ``.npy`` in base64 (enhanced, per-pixel uncertainty, the region
    answered) and PNG panels of up to four channels."""

    model: str
    file: str
    task: Literal["denoise", "inpaint", "upscale"]
    seed: int
    shape: list[int]
    n_tiles: int
    seconds: float
    region_fraction: float
    labels: list[str]
    panels: list[EnhancedPanel]
    enhanced_npy: str
    uncertainty_npy: str
    region_npy: str
    warnings: list[str] = []
    """What reading and checking the section said (maps on another scale, channels without signal, no mask; the same
    words as ``latentbridge enhance``'s warnings)."""


_DESCRIPTIONS = {
    400: "The model cannot do what was asked (the sentence says why)",
    401: "The API key is missing or wrong",
    404: "No model of that name, or the model has no such endpoint",
    408: "The upload stalled (no bytes for a minute)",
    413: "The upload, the recording or the array is larger than the server takes",
    422: "The upload could not be read (the sentence names the file and the problem), or a field is invalid "
         "(one entry per field)",
}


def errors(*codes: int) -> dict:
    """``responses=`` of a route: the :class:`Problem` body for each of ``codes``."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in codes}


def document_api_key(app: FastAPI) -> None:
    """Declare the server's key in ``app``'s schema: any one of the ``X-API-Key`` header, a bearer token, the
    ``api_key`` query parameter or the cookie the server sets; every operation may answer 401."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemes = {"ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                   "Bearer": {"type": "http", "scheme": "bearer"},
                   "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
                   "ApiKeyCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE}}
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(schemes)
        schema["security"] = [{name: []} for name in schemes]  # any one of them
        ref = {"$ref": "#/components/schemas/Problem"}
        for operations in schema.get("paths", {}).values():
            for op in operations.values():
                op.setdefault("responses", {}).setdefault(
                    "401", {"description": _DESCRIPTIONS[401], "content": {"application/json": {"schema": ref}}})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
