"""What the OpenAPI schema at ``/openapi.json`` says of errors and keys, so that clients generated from it read them.

Every error the server sends is ``{"detail": ...}``: a sentence (an upload that cannot be read names the client's file;
a missing model lists the served ones), or, for a request whose fields could not be read, one entry per problem with
its place and message. FastAPI's default schema documented only its own 422 body (``HTTPValidationError``, whose
``detail`` is always a list) and no key at all, so a client generated from it failed to parse the server's 422
sentences and sent requests without the key the server wanted.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel

from latentbridge.serve.security import COOKIE

__all__ = ["Problem", "ScoreResponse", "errors", "document_api_key"]


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
    spectrogram: dict[str, Any] | None = None
    """With ``?spectrogram=true``: the model's spectrogram of the recording for display (dB rows, low to high)."""


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
