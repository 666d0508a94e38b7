"""Scoring recordings through Lightning's predict loop: files are decoded and featurised in
DataLoader workers, chunk by chunk, and scored by the model; with ``devices > 1`` and a
distributed strategy (``ddp``), each process scores its share of the files and the first one
gathers every process's scores (one ``scores.csv``). A file's features are let go once it is scored:
what the report's checks need of them (the mean band power) is kept per file, so memory grows with the
number of windows' scores, not with their features (20,000 clips kept 1.0 GB of features)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from latentbridge.data.audio import FileFeatures, WindowFeatures, list_files
from latentbridge.training.fit import lightning_trainer
from latentbridge.utils import lightning_interrupts, progress_bar, quiet_lightning

_GATHER_ENV = "LATENTBRIDGE_SCORE_GATHER"


class _RankShare(torch.utils.data.Sampler):
    """Chunks ``rank, rank + world, ...`` of the process it runs in (all of them outside a distributed run)."""

    def __init__(self, n: int):
        self.n = n

    @staticmethod
    def _where() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self):
        rank, world = self._where()
        return iter(range(rank, self.n, world))

    def __len__(self) -> int:
        rank, world = self._where()
        return len(range(rank, self.n, world))


def file_seed(seed: int, features: np.ndarray) -> int:
    """The seed of a file's sampled scores (``elbo``, ``iwae``): ``seed`` plus a checksum of its first window's
    features, so that a file scores the same alone or among others, in any order, in any process."""
    return int(seed) + zlib.crc32(np.ascontiguousarray(features[:1], dtype=np.float32).tobytes())


class _Scorer(L.LightningModule):
    def __init__(self, det, in_blocks: "_ScoreInBlocks", seed: int = 0, band_config=None, bar=None):
        """``band_config``: the features' config when the model keeps a band profile of its training recordings
        (each file's mean band power is then kept for the band checks); ``bar``: a progress bar counting files;
        ``in_blocks``: scores a long recording read in blocks here, unless a DataLoader worker read it."""
        super().__init__()
        self.model = det.model
        self.method = det.method
        self.n_samples = det.iwae_samples
        self.seed = seed
        self.band_config = band_config
        self.bar = bar
        self.in_blocks = in_blocks

    def predict_step(self, chunk, batch_idx):
        from latentbridge.data.survey import band_power
        from latentbridge.tasks.anomaly import no_decision, score_features

        out, counted = [], 0.0
        for r in chunk:
            scores = r.scores  # a long recording read and scored in a DataLoader worker
            # a generator per file, seeded by its first window: the same scores however the files are shared between
            # processes, and wherever a file stands among those scored
            if r.streamed is not None:  # the bar moves through it (a long recording alone held it at 0 for minutes)
                moved = _BarShare(self.bar)
                scores = self.in_blocks(r, moved)
                counted += moved.share
            elif r.problem is None and scores is None:
                scores = score_features(self.model, r.features, self.method, self.n_samples,
                                        seed=file_seed(self.seed, r.features))
                if self.band_config is not None:
                    r.band_power = band_power(r.features, self.band_config)
                r.features = np.zeros((len(r.features), 0), np.float32)
            if scores is not None and (problem := no_decision(scores)) is not None:
                r.problem, r.band_power, scores = problem, None, None
            out.append((r, scores))
        if self.bar is not None:
            self.bar.update(len(chunk) - counted)
        return out


class _BarShare:
    """Moves ``bar`` (or nothing, None) to the share of one file scored so far (:func:`score_in_blocks`' ``advance``)."""

    def __init__(self, bar):
        self.bar, self.share = bar, 0.0

    def __call__(self, share: float) -> None:
        if self.bar is not None:
            self.bar.update(share - self.share)
        self.share = share


def score_in_blocks(ex, r: FileFeatures, model, method: str, n_samples: int, seed: int, band_config=None,
                    advance=None) -> np.ndarray | None:
    """The window scores of the long recording ``r.streamed`` read in blocks
    (:func:`~latentbridge.data.blocks.block_windows`), scored :data:`SCORE_BATCH` windows at a time with one generator
    (:func:`file_seed`): the scores of the recording read whole, in the memory of a block and a batch. Fills ``r`` as
    the whole read fills it (its features let go, their mean band power kept with ``band_config``); None, with
    ``r.problem``, for a file that cannot be used. ``advance``: called with the share of the recording scored so far
    after each batch (0 to 1)."""
    from latentbridge.data.silence import live_channels, silent_channels, silent_frame_shares
    from latentbridge.data.blocks import block_windows, feature_batches
    from latentbridge.data.survey import band_power
    from latentbridge.errors import DataError
    from latentbridge.tasks.anomaly import score_features

    g, live = None, None
    scores, starts, silent, power = [], [], [], []
    try:
        windows = block_windows(ex, r.streamed)
        for feats, s in feature_batches(ex, windows, SCORE_BATCH):
            g = g or torch.Generator().manual_seed(file_seed(seed, feats))
            scores.append(score_features(model, feats, method, n_samples, batch_size=SCORE_BATCH, generator=g))
            starts.append(s)
            silent.append(silent_frame_shares(feats))
            live = live_channels(feats) if live is None else live | live_channels(feats)
            if band_config is not None:
                power.append((band_power(feats, band_config), len(feats)))
            if advance is not None:
                advance(min(1.0, float(s[-1] + ex.window / ex.sample_rate) / max(windows.duration_s, 1e-9)))
    except DataError as e:
        r.problem = e.problem
        return None
    n = sum(map(len, scores))
    r.starts_s, r.duration_s, r.padded = np.concatenate(starts), windows.duration_s, windows.padded
    r.level_dbfs, r.clipped_share = round(windows.level_dbfs, 2), windows.blocks.clipped_share
    r.silent, r.features, r.dead = np.concatenate(silent), np.zeros((n, 0), np.float32), silent_channels(live)
    if power and all(p is not None for p, _ in power):
        r.band_power = sum(p * k for p, k in power) / n
    return np.concatenate(scores)


class _ScoreInBlocks:
    """:func:`score_in_blocks` of a long recording with the model, in the DataLoader worker that reads it (on CPU: the
    recordings read in blocks are then read and scored in parallel, as the others are read)."""

    def __init__(self, ex, det, seed: int, band_config=None):
        self.ex, self.model, self.method, self.n_samples = ex, det.model, det.method, det.iwae_samples
        self.seed, self.band_config = seed, band_config

    def __call__(self, r: FileFeatures, advance=None) -> np.ndarray | None:
        return score_in_blocks(self.ex, r, self.model, self.method, self.n_samples, self.seed,
                               self.band_config, advance)


#: windows of a long recording scored at a time (those :func:`~latentbridge.tasks.anomaly.score_features` scores at a
#: time: a sampled score draws the same numbers)
SCORE_BATCH = 256


class _Gather(BasePredictionWriter):
    """Every process writes its scores as JSON for the first process to merge."""

    def __init__(self, folder: Path):
        super().__init__(write_interval="epoch")
        self.folder = folder

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        rows = []
        for chunk in predictions:
            for r, scores in chunk:
                rows.append({"index": r.index, "starts_s": None if r.starts_s is None else r.starts_s.tolist(),
                             "duration_s": r.duration_s, "padded": r.padded, "problem": r.problem,
                             "level_dbfs": r.level_dbfs, "clipped_share": r.clipped_share,
                             "silent": None if r.silent is None else r.silent.tolist(), "dead": r.dead,
                             "band_power": None if r.band_power is None else r.band_power.tolist(),
                             "n_windows": None if scores is None else len(scores),
                             "scores": None if scores is None else scores.tolist()})
        tmp = self.folder / f".rank_{trainer.global_rank}.json.partial"
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, self.folder / f"rank_{trainer.global_rank}.json")


def _remove_orphans() -> None:
    """The exchange folders of distributed runs whose first process is gone (Lightning ends an interrupted DDP run
    with SIGKILL: no cleanup of its own runs), named ``latentbridge-score-PID-*``."""
    for folder in Path(tempfile.gettempdir()).glob("latentbridge-score-*-*"):
        try:
            os.kill(int(folder.name.split("-")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue  # not ours, or a live process of another user


def score_files(det, paths, *, skip_bad: bool = False, devices=None, strategy: str | None = None,
                accelerator: str | None = None, num_workers: int | None = None, seed: int = 0,
                progress: bool = False) -> tuple[WindowFeatures, np.ndarray] | None:
    """(windows, window scores) of every file of ``paths``; None in the extra processes of a distributed run
    (the first process returns everything). The windows keep no features (``features`` is (N, 0): read a
    window again for them) but each file's mean band power; ``progress``: a bar counting the files scored
    (the first process's share in a distributed run)."""
    files = list_files(paths)
    ex = det.extractor(**({} if num_workers is None else {"num_workers": num_workers}))
    ex.defer_streamed = True  # long recordings read in blocks where they are scored (score_in_blocks)
    ex.check_band(files)
    distributed = (devices not in (None, 1, "1")) or (strategy not in (None, "auto"))
    n_proc = int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1
    if distributed and len(files) < n_proc:
        from latentbridge.errors import LatentbridgeError

        raise LatentbridgeError(f"{len(files)} file(s) to score in {n_proc} processes: use fewer --devices")
    chunks = ex.chunks(files, shares=n_proc)
    from latentbridge.data.audio import FeatureChunks, _identity, _one_thread

    workers = min(ex.num_workers, len(chunks)) if len(chunks) > 1 else 0
    if workers:
        from latentbridge.data.feature_cache import check_before_workers

        check_before_workers(ex)  # (each worker process said it: 3 times for 12 files)
    fitted_band = bool((det.saved.info.get("data") or {}).get("band_profile_db"))
    band_config = det.spec.features if fitted_band else None
    # on CPU, the workers score the long recordings they read in blocks (the main process scored them one by one: 4
    # files of 10 min of 48-kHz stereo took 6.9 s with 2 workers, 4.1 s decoded whole in them)
    in_workers = workers > 0 and (accelerator or "cpu") == "cpu" and bool(ex.streamed)  # (the model sent if needed)
    in_blocks = _ScoreInBlocks(ex, det, seed, band_config)
    loader = torch.utils.data.DataLoader(
        FeatureChunks(ex, chunks, in_blocks if in_workers else None),
        batch_size=None, sampler=_RankShare(len(chunks)), collate_fn=_identity, num_workers=workers,
        worker_init_fn=_one_thread if workers > 0 else None)
    gather_dir, made_here = None, False
    callbacks = []
    if distributed:
        if _GATHER_ENV not in os.environ:  # the first process: the others inherit the folder
            _remove_orphans()
            os.environ[_GATHER_ENV] = tempfile.mkdtemp(prefix=f"latentbridge-score-{os.getpid()}-")
            made_here = True
        gather_dir = Path(os.environ[_GATHER_ENV])
        callbacks.append(_Gather(gather_dir))
    quiet_lightning()
    trainer = lightning_trainer(accelerator=accelerator or "cpu", devices=devices or 1, strategy=strategy or "auto",
                                logger=False, enable_progress_bar=False, enable_checkpointing=False,
                                enable_model_summary=False, callbacks=callbacks, use_distributed_sampler=False)
    spawned = "spawn" in str(strategy)  # the module is pickled into each process: no bar in it
    bar = progress_bar(sum(len(c) for c in chunks[::n_proc]), progress and trainer.global_rank == 0 and not spawned,
                       "scoring", unit="file", fractional=bool(ex.streamed))
    module = _Scorer(det, in_blocks, seed=seed, band_config=band_config, bar=None if spawned else bar)
    try:
        with lightning_interrupts():
            predictions = trainer.predict(module, loader, return_predictions=not distributed)
    except BaseException:
        if made_here:  # an interrupted run left its empty exchange folder behind
            shutil.rmtree(gather_dir, ignore_errors=True)
            os.environ.pop(_GATHER_ENV, None)
        raise
    finally:
        bar.close()
    if not distributed:
        pairs = [p for chunk in predictions for p in chunk]
    else:
        trainer.strategy.barrier()
        if trainer.global_rank != 0:
            return None
        pairs, seen = [], set()
        for f in sorted(gather_dir.glob("rank_*.json")):
            for row in json.loads(f.read_text()):
                if row["index"] in seen:
                    continue
                seen.add(row["index"])
                starts = None if row["starts_s"] is None else np.asarray(row["starts_s"])
                r = FileFeatures(row["index"], None if row["problem"] else np.zeros((row["n_windows"], 0), np.float32),
                                 starts, row["duration_s"], row["padded"], row["problem"], row.get("level_dbfs"),
                                 clipped_share=row.get("clipped_share"),
                                 silent=None if row.get("silent") is None else np.asarray(row["silent"], dtype=float),
                                 dead=row.get("dead"),
                                 band_power=None if row.get("band_power") is None else np.asarray(row["band_power"]))
                pairs.append((r, None if row["scores"] is None else np.asarray(row["scores"])))
        shutil.rmtree(gather_dir, ignore_errors=True)
        os.environ.pop(_GATHER_ENV, None)
    pairs.sort(key=lambda p: p[0].index)
    ex.keep_cache_limit(files)
    wf = ex.assemble(files, [r for r, _ in pairs], skip_bad, paths)
    scores = np.concatenate([s for r, s in pairs if r.problem is None]) if wf.files else np.zeros(0)
    return wf, scores
