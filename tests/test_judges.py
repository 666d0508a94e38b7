"""The waveform judge of spoken digits (MFCC statistics + logistic regression)."""

import numpy as np
import pytest

from conftest import FSDD


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_waveform_judge_learns_digits_and_round_trips(tmp_path):
    from latentbridge.data.digits import default_digit_spec, load_clips
    from latentbridge.data.sources import FSDD as Source
    from latentbridge.tasks.judges import WaveformJudge, ceiling

    spec = default_digit_spec()
    ds = Source(FSDD.parent)
    rng = np.random.default_rng(0)
    train = [ds.split("train")[i] for i in rng.choice(2700, 400, replace=False)]
    test = ds.split("test")[::3]
    judge = WaveformJudge.fit(load_clips([it.path for it in train], spec), [it.digit for it in train], 8000)
    waves = load_clips([it.path for it in test], spec)
    labels = [it.digit for it in test]
    acc = judge.accuracy(waves, labels)
    assert acc > 0.7, acc  # chance is 0.1
    judge.save(tmp_path / "j")
    again = WaveformJudge.load(tmp_path / "j")
    assert np.array_equal(again.predict(waves), judge.predict(waves))
    # silence carries no digit: the judge's accuracy on it is far below its accuracy on speech
    assert judge.accuracy(np.random.default_rng(1).normal(0, 1e-3, waves.shape), labels) < 0.5 * acc
    from latentbridge.data.digits import clip_features

    assert 0.3 < ceiling(judge, clip_features(waves[:30], spec), labels[:30], spec, n_iter=8) <= 1.0


def test_griffin_lim_audio_never_passes_full_scale():
    """Generated log-mels loud enough to pass full scale come back scaled to a 0.99 peak (what a wav
    holds, never hard-clipped); the others are returned untouched."""
    import torch

    from latentbridge.data.digits import default_digit_spec
    from latentbridge.tasks.crossmodal import FULL_SCALE_PEAK, to_waves
    from latentbridge.transforms.spec import build_spectrogram

    spec = default_digit_spec()
    t = np.arange(spec.window_samples) / spec.sample_rate
    tones = np.stack([a * np.sin(2 * np.pi * 440 * t) for a in (0.3, 3.0)]).astype(np.float32)
    with torch.no_grad():
        mels = build_spectrogram(spec)(torch.from_numpy(tones)).numpy()
    waves = to_waves(spec, mels, 16)
    raw = build_spectrogram(spec).invert(torch.from_numpy(mels), length=spec.window_samples, n_iter=16)
    raw = raw.reshape(2, -1).numpy()
    assert np.abs(raw[1]).max() > 2.0  # Griffin-Lim gives the loud tone's level back
    assert np.abs(waves[1]).max() == pytest.approx(FULL_SCALE_PEAK, abs=1e-6)
    np.testing.assert_allclose(waves[1], raw[1] * FULL_SCALE_PEAK / np.abs(raw[1]).max(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(waves[0], raw[0])  # a quiet clip: unchanged


def test_the_cached_waveform_judge_is_the_one_of_the_runs_data(tmp_path, monkeypatch):
    """The judge was cached by sample rate alone: a run of other voices was judged by one fitted on FSDD's (and an
    FSDD run by one of a user's two speakers: ceiling 0.97 -> 0.59, without a word). It is kept per data folder."""
    import latentbridge.tasks.judges as judges
    from latentbridge.data.digits import default_digit_spec
    from latentbridge.tasks.classify import data_folder, data_path

    fitted = []

    def fit(root, spec, folder, limit=None, seed=0):  # no real fit: which folder for which data is the point
        judge = judges.WaveformJudge(np.zeros(2), np.ones(2), np.zeros((10, 2)), np.zeros(10), 8000,
                                     {"sample_rate": 8000, "data_root": str(data_path(root))})
        judge.save(folder)
        fitted.append(folder)
        return judge

    monkeypatch.setattr(judges, "fit_waveform_judge", fit)
    spec = default_digit_spec()
    a, b = tmp_path / "voices_a", tmp_path / "voices_b"
    a.mkdir(), b.mkdir()
    first = judges.load_waveform_judge(a, spec, cache_dir=tmp_path / "cache")
    assert fitted == [judges.judge_dir(spec, tmp_path / "cache")] and first.info["data_root"] == str(a.resolve())
    judges.load_waveform_judge(a / "recordings", spec, cache_dir=tmp_path / "cache")  # the same folder: reused
    other = judges.load_waveform_judge(b, spec, cache_dir=tmp_path / "cache")
    assert fitted[1:] == [data_folder(judges.judge_dir(spec, tmp_path / "cache"), b)]
    assert other.info["data_root"] == str(b.resolve())
    judges.load_waveform_judge(b, spec, cache_dir=tmp_path / "cache")
    judges.load_waveform_judge(a, spec, cache_dir=tmp_path / "cache")
    assert len(fitted) == 2
    # a judge cut short (its arrays half written): fitted again in its place (a JSONDecodeError traceback before)
    (data_folder(judges.judge_dir(spec, tmp_path / "cache"), b) / "judge.npz").write_bytes(b"PK\x03\x04 cut")
    assert judges.load_waveform_judge(b, spec, cache_dir=tmp_path / "cache").info["data_root"] == str(b.resolve())
    assert fitted[2:] == [data_folder(judges.judge_dir(spec, tmp_path / "cache"), b)]


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_a_judge_fitted_where_its_cache_cannot_be_written_serves_the_run(tmp_path, caplog):
    """A read-only cache stopped the evaluation on the judge's save (an OSError); the judge serves the run, said."""
    from conftest import mounted
    from latentbridge.data.digits import default_digit_spec
    from latentbridge.tasks.judges import WaveformJudge, fit_waveform_judge

    with mounted(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs") as ro, caplog.at_level("WARNING"):
        judge = fit_waveform_judge(FSDD.parent, default_digit_spec(), ro / "judge", limit=60)
        assert isinstance(judge, WaveformJudge) and 0 <= judge.info["test_accuracy_real_clips"] <= 1
        assert "the waveform judge serves this run only" in caplog.text and "Read-only file system" in caplog.text
        assert list(ro.iterdir()) == []
