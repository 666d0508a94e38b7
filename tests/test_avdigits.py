"""Audio-visual digits: train, evaluate (coherence) and analyze (clusters, relationships) on real FSDD + MNIST."""

import json

import numpy as np
import pytest
import torch

from conftest import FSDD, REPO
from latentbridge.cli import main

MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
pytestmark = pytest.mark.skipif(not (FSDD.exists() and MNIST_DIR.exists()),
                                reason="FSDD or MNIST not available under ../shared/data")

SMALL = ["train.max_epochs=2", "train.progress_bar=false", "digits.limit_train_clips=200",
         "digits.limit_test_clips=60", "digits.pairs_per_clip=1", "model.channels=[8,16,32]",
         "model.image_channels=[8,16]", "model.latent_dim=16", "beta.warmup_steps=20", "train.batch_size=32"]


def _o(extra=()):
    out = [f"digits.fsdd_root={FSDD.parent}", f"digits.mnist_root={MNIST_DIR}", *SMALL, *extra]
    return [x for o in out for x in ("-o", o)]


@pytest.fixture(scope="module")
def small_classifiers(feature_cache):
    """Quick classifiers in the cache folder that evaluate/analyze load (so they are not trained in full)."""
    from latentbridge.tasks.classify import classifier_dir, train_classifier

    for kind, root in (("mnist", MNIST_DIR), ("fsdd", FSDD.parent)):
        if not (classifier_dir(kind) / "config.json").exists():
            train_classifier(kind, classifier_dir(kind), data_root=root, epochs=3, n_train=1500, n_test=300,
                             force=True)


@pytest.fixture(scope="module")
def av_run(tmp_path_factory, feature_cache):
    out = tmp_path_factory.mktemp("av") / "run"
    assert main(["train", "--config", str(REPO / "configs" / "avdigits.yaml"), "--out", str(out), *_o()]) == 0
    return out


def test_pairs_respect_the_splits(feature_cache):
    from latentbridge.config import load_config
    from latentbridge.tasks.avdigits import build_pairs

    cfg = load_config(REPO / "configs" / "avdigits.yaml", [o for o in _o() if o != "-o"])
    train, info_tr = build_pairs(cfg, "train")
    test, info_te = build_pairs(cfg, "test")
    assert len(train.label) == 200 and len(test.label) == 60
    assert not set(train.clip.tolist()) & set(test.clip.tolist())
    assert train.audio.shape[1:] == (1, 64, 128) and train.image.shape[1:] == (1, 28, 28)
    assert info_tr["mnist_offline_split"] in (True, False)
    # the paired image shows the spoken digit: check with the MNIST labels behind the pairing
    assert set(np.unique(train.label)) == set(range(10))


def test_train_evaluate_analyze(av_run, small_classifiers, tmp_path, capsys):
    info = json.loads((av_run / "config.json").read_text())
    assert info["model_class"] == "avmvae" and info["data"]["n_train_pairs"] > 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(av_run), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for k in ("coherence_audio_to_image", "coherence_image_to_audio", "coherence_image_to_wav",
              "z_joint_kmeans_nmi", "audio_recon_mse_db", "image_recon_bce"):
        assert np.isfinite(m[k]), k
    assert 0.0 <= m["coherence_audio_to_image"] <= 1.0
    assert m["mnist_classifier_test_accuracy"] > 0.5  # even the quick test classifier is far above chance
    wavs = sorted(out.glob("image_to_audio_*.wav"))
    assert wavs
    import soundfile as sf

    w, sr = sf.read(wavs[0])
    assert sr == 8000 and len(w) == 8000
    assert "<img" in (out / "report.html").read_text()

    ana = tmp_path / "analysis"
    assert main(["analyze", str(av_run), "--out", str(ana)]) == 0
    a = json.loads((ana / "metrics.json").read_text())
    for k in ("z_audio_kmeans_nmi", "z_image_gmm_ari", "one_to_one_agreement", "convergence_rate",
              "retrieval_audio_to_image_top1", "association_generation_audio_to_image_coherence"):
        assert a[k] is not None and np.isfinite(a[k]), k
    rel = json.loads((ana / "relationships.json").read_text())
    counts = np.array(rel["counts"])
    assert counts.sum() == a["n_test_pairs"]
    p = np.array(rel["p_audio_given_image"])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert {s["zone"] for s in rel["per_sample"]} <= {"converges", "diverges"}
    for png in ("relationship_p_audio_given_image.png", "zones_by_cluster.png", "z_joint_tsne.png",
                "z_audio_umap.png"):
        assert (ana / png).read_bytes()[:4] == b"\x89PNG"


def test_model_generates_both_modalities(av_run):
    from latentbridge.models.hub import load_model

    model = load_model(av_run).model
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s["image"].shape == (4, 1, 28, 28) and s["audio"].shape == (4, 1, 64, 128)
    assert ((s["image"] >= 0) & (s["image"] <= 1)).all()
    for fusion_use in [("audio",), ("image",), ("audio", "image")]:
        q = model.infer({"audio": torch.zeros(2, 1, 64, 128) - 40, "image": torch.zeros(2, 1, 28, 28)}, fusion_use)
        assert q.mean.shape == (2, 16)


def test_analyze_refuses_other_tasks(fitted_model, tmp_path, capsys):
    assert main(["analyze", str(fitted_model), "--out", str(tmp_path / "a")]) == 2
    assert "avdigits" in capsys.readouterr().err


@pytest.mark.parametrize("rate, channels", [(16000, 1), (8000, 2)])
def test_clip_with_wrong_rate_or_channels_is_named(tmp_path, rate, channels):
    import soundfile as sf

    from latentbridge.data.digits import load_clips
    from latentbridge.errors import DataError

    bad = tmp_path / "3_someone_7.wav"
    sf.write(bad, np.random.default_rng(0).normal(0, 0.1, (rate // 2, channels)), rate)
    with pytest.raises(DataError, match=f"3_someone_7.wav.*{channels} channel.*{rate} Hz"):
        load_clips([bad])
