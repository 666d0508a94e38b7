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
