"""``latentbridge audio reconstruct``: encode/decode recordings window by window and rebuild audio
(compute only; ``latentbridge.report.autoencode.write_reconstructions`` writes the wavs and plots)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.errors import LatentbridgeError
from latentbridge.utils import batched, listed, output_names

log = logging.getLogger(__name__)

#: windows encoded and decoded at once
BATCH = 32


def blend_frames(batches, offset: int, valid: int, total: int) -> np.ndarray:
    """Windows' spectrograms, batches ``(b, F, frames)`` of them in window order, on one frame grid: window ``i``'s
    first ``valid`` frames at frames ``i * offset ...`` of ``total``, blended with Hann-shaped weights (a window's edge
    frames, which its own padding shaped, count least) -> ``(F, total)``. Blend magnitudes, not dB: a window's edge
    decoded as silence (-100 dB) pulled a dB average 14 dB down even at a fifth of the weight."""
    w = 1e-3 + np.hanning(valid + 2)[1:-1]
    out, wsum, i = None, np.zeros(total), 0
    for features in batches:
        out = np.zeros((features.shape[1], total)) if out is None else out
        for window in features:
            stop = min(total, i * offset + valid)
            out[:, i * offset:stop] += w[:stop - i * offset] * window[:, :stop - i * offset]
            wsum[i * offset:stop] += w[:stop - i * offset]
            i += 1
    return out / np.maximum(wsum, 1e-12)


@dataclass
class FileReconstruction:
    path: Path
    stem: str
    n_windows: int
    sample_rate: int
    """The file's own rate: ``output`` is at this rate and length."""
    output: np.ndarray
    spectrogram_in: np.ndarray  # full-length features (F, T) of the input at the model's rate
    spectrogram_out: np.ndarray  # and of the rebuilt audio
    metrics: dict = field(default_factory=dict)


@dataclass
class Reconstructions:
    model: str
    phase: str
    model_sample_rate: int
    hop_length: int
    kind: str
    files: list[FileReconstruction]
    postfilter: bool = False
    """Whether the decoded log-mels passed the model's global-variance post-filter."""
    features: object = None
    """The model's spectrogram parameters (``SpectrogramParams``): the plots' frequencies, times and unit."""


@torch.no_grad()
def reconstruct(model_dir: str | Path, files, n_iter: int = 64, phase: str = "griffinlim",
                postfilter: bool = True) -> Reconstructions:
    """Every audio file through the model, window by window, back to audio.

    Each file is read at the model's rate (mono mix, or the model's channel), cut into the model's
    windows overlapping by at least half (hop ``audio.hop_s`` or half a window, whichever is shorter, on the STFT's
    frame grid; the last window zero-padded) and reconstructed; the windows' decoded spectrograms are blended into
    one spectrogram of the whole recording, which is inverted at once: ``phase`` ``"griffinlim"`` (``n_iter``
    iterations; the only choice for mel features, which keep no phase) or ``"input"`` (linear-STFT models: the
    ISTFT with the input's phase). (Windows side by side, each inverted on its own, left a seam at every window's
    end: a model trained on padded clips decodes a window's last frames as silence, 0.1 s of -89 dB every second.)
    When the file's own rate differs, the result is resampled back to it, so the output has the input's rate and
    length. Decoded log-mels pass the model's global-variance post-filter where its folder has one (an MLD audio
    stage; ``postfilter=False``: the decoder's raw output), as they do when the MLD model samples audio."""
    from latentbridge.data.audio import list_files
    from latentbridge.errors import DataError, named_problems
    from latentbridge.io import audio_info, check_recording_length, level_dbfs, read_audio, resample
    from latentbridge.models.hub import load_model
    from latentbridge.tasks.autoencode import safe_audio_metrics
    from latentbridge.transforms.audio import SpectrogramTransform
    from latentbridge.transforms.postfilter import saved_postfilter
    from latentbridge.transforms.spec import AudioTransform, build_spectrogram

    saved = load_model(model_dir)
    spec = saved.transform
    if not isinstance(spec, AudioTransform) or saved.workflow.task not in ("audio_ae", "anomaly"):
        stage = Path(model_dir) / "first_stage" / "audio"
        hint = f"; its audio stage is {stage}" if (stage / "config.json").is_file() else ""
        raise LatentbridgeError(f"{model_dir}: not an audio model (task {saved.workflow.task!r}){hint}")
    if not getattr(saved.model, "has_reconstruction", True):  # it passed the input through, called a reconstruction
        raise LatentbridgeError(f"{model_dir}: a {saved.info['model_class']!r} detector scores statistics of the "
                                "windows and rebuilds nothing; reconstruct with an autoencoder (configs/mel_ae.yaml, "
                                "or anomaly fit -o model.name=conv_ae)")
    transform = build_spectrogram(spec)
    if not transform.stft.center:  # (overlap-add 0 at the first sample: a traceback)
        raise LatentbridgeError(f"{model_dir}: its features are not centred (features.center: false), so the first "
                                "samples of every window lie under the window's zero and no sound can be rebuilt "
                                "from them; train the model with center: true to reconstruct")
    if phase not in ("griffinlim", "input"):
        raise ValueError(f"phase must be 'griffinlim' or 'input', got {phase!r}")
    if phase == "input" and transform.kind != "stft":
        raise ValueError("phase='input' needs linear-STFT features; mel features keep no phase (use Griffin-Lim)")
    pf = saved_postfilter(saved) if postfilter else None
    if not postfilter and saved_postfilter(saved) is None:  # (the flag did nothing, and nothing said so)
        log.warning("--no-postfilter: %s has no post-filter (an MLD audio stage's): its reconstructions are the "
                    "decoder's output either way", model_dir)
    sr, window = spec.sample_rate, spec.window_samples
    full = SpectrogramTransform(**{**spec.features.model_dump(), "n_frames": None}).eval()
    h = transform.hop_length
    valid = transform.stft.num_frames(window)
    valid = min(valid, transform.n_frames or valid)  # the frames of a window that hold its samples
    hop = max(h, min(spec.hop_samples, window // 2, (valid - 1) * h // 2) // h * h)
    # each file once: one given directly and through its folder was rebuilt twice, the second renamed
    paths = list_files([files] if isinstance(files, (str, Path)) else list(files))
    channel = spec.windowing.channel

    def read(path: Path) -> np.ndarray:
        wave, _ = read_audio(path, sample_rate=sr, mono=channel is None, channel=channel)
        check_recording_length(wave.shape[-1], window, sr, path, spec.windowing.min_share)
        return wave.reshape(-1)

    waves, problems = [], []  # every unusable file named before any work (the first stopped it after others)
    for path in paths:
        try:
            waves.append(read(path))
        except DataError as e:
            problems.append(e)
    if problems:
        given = files if isinstance(files, (str, Path)) else ", ".join(map(str, files))
        raise DataError(given, f"{len(problems)} of {len(paths)} audio files cannot be used: "
                        + named_problems(problems))
    natives = [audio_info(p) for p in paths]  # each header read once
    say_conversions(paths, natives, spec)
    results = []
    # sample's rule: repeated file names named by their folders (Test_01_rec, Test_02_rec; were rec, rec_)
    stems = output_names(paths, set(), max_bytes=255 - len("_reconstructed.wav"))  # the longest output name
    for path, wave, native, stem in zip(paths, waves, natives, stems):
        total = wave.shape[-1]
        n = 1 if total <= window else math.ceil((total - window) / hop) + 1
        padded = np.zeros((n - 1) * hop + window, dtype=np.float32)
        padded[:total] = wave

        def decoded(idx: torch.Tensor) -> torch.Tensor:  # a batch of windows through the model: their log-mels
            return saved.model.reconstruct(transform(torch.from_numpy(
                np.stack([padded[i * hop:i * hop + window] for i in idx.tolist()]))))

        rec = batched(decoded, np.arange(n), batch_size=BATCH)  # (every window at once held the model's activations)
        rec = pf.apply(rec) if pf is not None else rec
        # their magnitudes a batch at a time, blended as they come (every window's at once: 0.25 GB of 3 minutes)
        mags = (transform.features_to_magnitude(rec[s:s + BATCH, 0]).double().numpy() for s in range(0, n, BATCH))
        frames = full.stft.num_frames(len(padded))  # the whole recording's STFT frames
        blended = torch.from_numpy(blend_frames(mags, hop // h, valid, frames)).float()[None]
        angle = full.stft(torch.from_numpy(padded)[None]).angle() if phase == "input" else None
        out = full.magnitude_to_wave(blended, length=len(padded), phase=angle, n_iter=n_iter)[0]
        out = out.numpy()[:total].astype(np.float32)
        metrics = safe_audio_metrics(out, wave, sr, str(path))
        written = out
        if native.sample_rate != sr:
            written = resample(out, sr, native.sample_rate)
            written = np.pad(written, (0, max(0, native.frames - len(written))))[:native.frames]
        if (peak := float(np.abs(wave).max(initial=0.0))) > 1:
            change = "resampled to the model's rate" if native.sample_rate != sr else "its constant offset is taken out"
            why = (f"a float file's samples over +-1, or its peaks once {change}" if native.codec in ("FLOAT", "DOUBLE")
                   else f"a recording clipped at full scale, whose peaks overshoot it once {change}")  # 16-bit: no
            log.warning("%s: peaks at %+.1f dBFS, above full scale (%s): the model learnt recordings under it, so the "
                        "rebuild's level and sound are not the input's, and the written WAV is clipped at full scale; "
                        "scale the input under full scale", path, 20 * np.log10(peak), why)
        elif (over := int((np.abs(written) > 1).sum())):  # the rebuild itself overshoots (Griffin-Lim's phase where
            # the frames' windows overlap little: 17 samples at +-1 of a -13.5 dBFS sine, written without a word)
            log.warning("%s: the rebuilt sound overshoots full scale in %d sample(s) (peak %+.1f dBFS), clipped in the "
                        "written WAV%s", path, over, 20 * np.log10(float(np.abs(written).max())),
                        f": features.hop_length {h} is over half of n_fft {full.stft.n_fft}, so the frames' windows "
                        "overlap little" if 2 * h > full.stft.n_fft else "")
        a = full(torch.from_numpy(wave)[None])[0, 0].numpy()
        b = full(torch.from_numpy(out)[None])[0, 0].numpy()
        heard = ("mono mix" if channel is None else f"channel {channel}") if native.channels > 1 else "mono"
        results.append(FileReconstruction(path, stem, int(n), native.sample_rate, np.clip(written, -1, 1), a, b,
                                          {"duration_s": total / sr, "input_channels": int(native.channels),
                                           "reconstructed": heard, "level_in_dbfs": level_dbfs(wave),
                                           "level_out_dbfs": level_dbfs(out), **metrics}))
    phase_text = ("input phase (ISTFT)" if phase == "input"
                  else f"Griffin-Lim, {n_iter} iterations (mel features keep no phase)")
    return Reconstructions(str(model_dir), phase_text, sr, transform.hop_length, transform.kind, results,
                           postfilter=pf is not None, features=spec.features)


def say_conversions(paths: list[Path], natives: list, spec, rebuilt: str = "rebuilt") -> list[str]:
    """Warn of inputs recorded below the model's band (resampled, their top is empty: the model fills it with what
    it learnt, or nothing, and the rebuilt sound is not the input's) and of inputs of several channels (rebuilt as
    their mono mix, or the model's one channel); both went without a word. ``natives``: their headers
    (:func:`~latentbridge.io.audio_info`). Returns those below the band, named."""
    from latentbridge.data.survey import band_fmax, below_band

    infos = list(zip(paths, natives))
    top = band_fmax(spec.features) or spec.sample_rate / 2
    low = [f"{p.name} ({i.sample_rate} Hz)" for p, i in infos if below_band(i.sample_rate, top)]
    if low:
        log.warning("%d input(s) recorded below the model's band (it reaches %g Hz): %s; resampled, their top is "
                    "empty, and the %s sound there is the model's, not theirs", len(low), top, listed(low), rebuilt)
    multi = [f"{p.name} ({i.channels} channels)" for p, i in infos if i.channels > 1]
    if multi:
        channel = spec.windowing.channel
        log.warning("%d input(s) of several channels %s as %s: %s", len(multi), rebuilt,
                    "their mono mix" if channel is None else f"their channel {channel} (the model's)", listed(multi))
    return low

