"""The base of every workflow schema: the sections all workflows share (:class:`Workflow`), those of the
workflows that turn recordings into spectrogram features (:class:`_AudioWorkflow`), and a workflow's
``model`` section as the union of the registered models that train it (:func:`_model_union`)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar, Union

from pydantic import Field, model_validator

from latentbridge.config.loading import deep_merge
from latentbridge.config.sections import AudioConfig, FeatureConfig, Section, TrainConfig
from latentbridge.models.registry import models_for_task
from latentbridge.transforms.spec import AudioTransform, SpectrogramParams, Windowing

log = logging.getLogger(__name__)


def _model_union(task: str):
    classes = tuple(cls.config_class for cls in models_for_task(task))
    if not classes:
        raise RuntimeError(f"no registered model trains the {task!r} workflow")
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="name")]


class Workflow(Section):
    """Sections every training workflow has; subclasses add their own."""

    task: str
    description: str = ""
    train: TrainConfig = Field(default_factory=TrainConfig)
    default_model: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _default_model_name(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = deep_merge(cls.section_defaults(data), data)
            model = data.get("model")
            if model is None:
                data = {**data, "model": {"name": cls.default_model}}
            elif isinstance(model, dict) and "name" not in model:
                data = {**data, "model": {"name": cls.default_model, **model}}
        return data

    @classmethod
    def section_defaults(cls, data: dict) -> dict:
        """The workflow's own defaults of the sections ``data`` gives in part: the keys where a section's default here
        differs from the section's own (an audio-visual config of ``audio: {pad: wrap}`` read its clips at 16 kHz and
        2 s, the audio section's defaults, for the workflow's 8 kHz and 1 s; a spatial one of ``beta: {value: 0.1}``
        lost the sine schedule)."""
        out = {}
        for name, field in cls.model_fields.items():
            if isinstance(data.get(name), dict) and field.default_factory is not None \
                    and isinstance(own := field.default_factory(), Section) \
                    and (differ := own.model_dump(exclude_defaults=True)):
                out[name] = differ
        return out

    def transform_spec(self, **data: Any):  # pragma: no cover - every workflow overrides it
        raise NotImplementedError

    def example_data(self) -> dict[str, Any]:
        """Plausible data-derived model arguments from the config alone (checks, shape reports)."""
        return {}


class _AudioWorkflow(Workflow):
    """The workflows that turn recordings into spectrogram features (sliding windows by default)."""

    audio: AudioConfig = Field(default_factory=AudioConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    #: the tasks whose spectrograms are turned back into sound (Griffin-Lim, ISTFT)
    inverting_tasks: ClassVar[tuple[str, ...]] = ("audio_ae", "avdigits", "mld")

    @model_validator(mode="after")
    def _check(self):
        self._check_features()
        if self.audio.channel == "all" and self.task != "anomaly":
            raise ValueError(f"audio.channel: 'all' (every channel, side by side) is for anomaly models, not "
                             f"{self.task}: pick one channel (audio.channel=K) or mix them (audio.channel=null)")
        if isinstance(self.audio.channel, int) and self.audio.channel < 0:
            raise ValueError(f"audio.channel: channels count from 0, got {self.audio.channel}")
        return self

    def transform_spec(self, **data: Any) -> AudioTransform:
        return self.audio_transform()

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """(channels, rows, frames) of one window's features."""
        f = self.features
        return (1, f.n_mels if f.kind == "mel" else f.n_fft // 2 + 1, self.n_frames)

    def example_data(self) -> dict[str, Any]:
        return {"input_shape": self.feature_shape}

    def transform_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of :class:`~latentbridge.transforms.audio.SpectrogramTransform`."""
        f = self.features
        return dict(
            sample_rate=self.audio.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length,
            win_length=f.win_length, window=f.window, center=f.center, kind=f.kind,
            n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax, scale=f.scale, amin=f.amin,
            top_db=f.top_db, normalize=f.normalize, n_frames=self.n_frames, power=f.power,
        )

    @property
    def n_frames(self) -> int:
        """Frames per window: the configured count, or what one window yields."""
        f = self.features
        if f.n_frames is not None:
            return f.n_frames
        from latentbridge.transforms.numpy_stft import num_frames

        return num_frames(self.audio.window_samples, f.n_fft, f.hop_length, f.center)

    def _pending(self, key: str) -> bool:
        """Whether ``audio.KEY`` (or ``features.KEY``) is still to be chosen from the data (the anomaly
        workflow's survey), so the checks that involve it wait for the chosen value."""
        return False

    def _check_features(self) -> None:
        f, a = self.features, self.audio
        rate_known = not self._pending("sample_rate")
        stft_known = not self._pending("features.n_fft")
        if f.n_fft > a.window_samples and rate_known and stft_known and not self._pending("window_s"):
            raise ValueError(f"features.n_fft ({f.n_fft}) is longer than one window "
                             f"(audio.window_s x audio.sample_rate = {a.window_samples} samples)")
        if f.fmax is not None and f.fmax > a.sample_rate / 2 and rate_known:
            raise ValueError(f"features.fmax ({f.fmax}) is above Nyquist ({a.sample_rate / 2})")
        top = f.fmax if f.fmax is not None else a.sample_rate / 2 if rate_known else float("inf")
        if f.fmin >= top:
            raise ValueError(f"features.fmin ({f.fmin:g} Hz) is not below the top of the band ("
                             + (f"features.fmax {f.fmax:g} Hz)" if f.fmax is not None else
                                f"Nyquist of audio.sample_rate {a.sample_rate}: {top:g} Hz)")
                             + ": the spectrogram would hold no frequencies")
        if f.kind != "mel" and f.fmin > 0:  # (read by no STFT: its bins start at 0 Hz, without a word)
            raise ValueError(f"features.fmin ({f.fmin:g} Hz) is the bottom of a mel scale's band; the STFT's bins "
                             "(features.kind: stft) start at 0 Hz: leave it out, or use features.kind: mel")
        if f.win_length is not None and f.win_length > f.n_fft:
            raise ValueError(f"features.win_length ({f.win_length}) is longer than features.n_fft ({f.n_fft})")
        if stft_known and not self._pending("features.hop_length") and f.hop_length > (f.win_length or f.n_fft):
            raise ValueError(f"features.hop_length ({f.hop_length}) is longer than the STFT's window (features."
                             f"{'win_length' if f.win_length else 'n_fft'}, {f.win_length or f.n_fft} samples): the "
                             "samples between frames would reach no frame"
                             + (", and no sound could be rebuilt" if self.task in self.inverting_tasks else ""))
        if self.task in self.inverting_tasks and not f.center:
            raise ValueError(f"features.center: false is not for the {self.task} task, whose spectrograms are "
                             "turned back into sound: without centring, the first samples lie under the window's zero "
                             "and no inverse STFT can rebuild them; keep center: true")
        if f.kind == "mel" and rate_known and stft_known and not self._pending("features.n_mels"):
            from latentbridge.transforms.mel import mel_bands_without_bins

            empty, most = mel_bands_without_bins(a.sample_rate, f.n_fft, f.n_mels, f.fmin, f.fmax)
            if empty and not most:  # ("use at most 0 bands")
                raise ValueError(f"features.fmin-fmax ({f.fmin:g}-{top:g} Hz) holds no frequency bin of features.n_fft "
                                 f"{f.n_fft} at {a.sample_rate} Hz (bins {a.sample_rate / f.n_fft:g} Hz apart): widen "
                                 "the band, or a longer n_fft")
            if empty:  # they read silence whatever the sound (librosa only warned)
                raise ValueError(f"features.n_mels ({f.n_mels}) is too many for features.n_fft ({f.n_fft}) at "
                                 f"{a.sample_rate} Hz over {f.fmin:g}-{top:g} Hz: {empty} mel bands would hold no "
                                 f"frequency bin; use at most {most} bands or a longer n_fft")

    def audio_transform(self, clip: str = "windows", standardize: bool | None = None) -> AudioTransform:
        a = self.audio
        return AudioTransform(
            windowing=Windowing(window_s=a.window_s, hop_s=a.hop_s, pad=a.pad, channel=a.channel, clip=clip,
                                trim_db=a.trim_db, min_share=a.min_window_share, csv_rate=a.csv_rate,
                                columns=a.columns or None),
            features=SpectrogramParams(**self.transform_kwargs()),
            standardize=self.features.standardize if standardize is None else standardize)


def say_replaced(key: str, stage: dict, **sections: dict) -> None:
    """A first stage's own ``audio`` / ``features`` settings that its run's sections (``sections``, dumped) replace,
    said once: a run of spoken digits has one definition of its clips and features for its pairs, its judges and its
    audio stage, and ``-o first_stage.stages.audio.audio.min_window_share=0.1`` was dropped without a word."""
    from latentbridge.utils import first_time

    kinds, changed = {"audio": AudioConfig, "features": FeatureConfig}, []
    for name, run in sections.items():
        own = stage.get(name)
        if isinstance(own, dict) and name in kinds:
            mine = kinds[name](**{**run, **own}).model_dump()
            changed += [(f"{name}.{k}", mine[k], run[k]) for k in run if k in own and mine[k] != run[k]]
    if changed and first_time(("stage settings replaced", key, tuple(changed))):
        log.warning("first_stage.stages.%s: the run's %s sections replace the stage's own (%s): set them on the run "
                    "(-o %s)", key, " and ".join(sections), "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed),
                    " -o ".join(f"{k}={a}" for k, a, _ in changed))
