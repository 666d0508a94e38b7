"""Sample images from an exported diffusion denoiser with numpy and onnxruntime only (no torch).

``latentbridge export RUN --out model.onnx`` writes one denoiser step with the process in its
metadata (``alphas_cumprod``, prediction type, clipping, image shape, classes). This module runs
deterministic DDIM (``eta`` = 0, ``trailing`` timestep spacing, as
:meth:`latentbridge.models.process.DiffusionProcess.sample` with ``scheduler="ddim"``) with
classifier-free guidance around it::

    python -m latentbridge.edge_sampler model.onnx --num-samples 16 --class 3 --steps 50 --out samples/

writes the folder ``latentbridge sample`` writes (:func:`~latentbridge.io.images.write_image_samples`):
``sample_NNNN.png`` files, ``grid.png``, ``samples.npz`` and ``settings.json`` (the settings, each file's class).
``import latentbridge.edge_sampler`` does not import torch. With the same starting noise it reproduces the PyTorch
sampler to float32 round-off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from latentbridge.arguments import ArgumentParser
from latentbridge.errors import DataError, LatentbridgeError, memory_text, os_error_text, out_of_memory
from latentbridge.utils import tolerant_stdout

METADATA_KEY = "latentbridge"


class OnnxDenoiser:
    """An exported denoiser and its process (from the ONNX metadata)."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise DataError(path, "ONNX file does not exist")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise DataError(path, f"not a readable ONNX model ({str(e).splitlines()[0][:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.meta = json.loads(meta[METADATA_KEY])
        except (KeyError, json.JSONDecodeError):
            raise DataError(path, "no latentbridge metadata (export it with `latentbridge export`)") from None
        if self.meta.get("format") != "latentbridge-onnx-denoiser":
            raise DataError(path, f"not a diffusion denoiser export (format {self.meta.get('format')!r})")
        self.image_shape = tuple(self.meta["image_shape"])
        self.n_classes = int(self.meta["n_classes"])
        self.n_continuous = int(self.meta["n_continuous"])
        self.alphas_cumprod = np.asarray(self.meta["alphas_cumprod"], dtype=np.float64)
        proc = self.meta["process"]
        self.prediction = proc["prediction"]
        self.clip = proc.get("clip_sample")
        self.train_timesteps = int(proc["train_timesteps"])

    def predict(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None, c: np.ndarray | None = None,
                use_condition: np.ndarray | None = None) -> np.ndarray:
        """One denoiser evaluation (``y`` = ``n_classes``: the null class)."""
        n = len(x)
        feeds = {"sample": x.astype(np.float32), "timestep": np.broadcast_to(np.asarray(t, np.int64), (n,)).copy()}
        if self.n_classes:
            feeds["class_label"] = (np.full(n, self.n_classes) if y is None else np.asarray(y)).astype(np.int64)
        if self.n_continuous:
            feeds["condition"] = (np.zeros((n, self.n_continuous)) if c is None else np.asarray(c)).astype(np.float32)
            mask = np.zeros(n) if use_condition is None else np.asarray(use_condition, dtype=np.float64)
            feeds["condition_mask"] = mask.astype(np.float32)
        return self.session.run(None, feeds)[0]

    def timesteps(self, steps: int) -> np.ndarray:
        if not 1 <= steps <= self.train_timesteps:
            raise LatentbridgeError(f"steps must be in 1..{self.train_timesteps}, got {steps}")
        ratio = self.train_timesteps / steps
        return np.round(np.arange(self.train_timesteps, 0, -ratio)).astype(np.int64) - 1

    def guided(self, x, t, y, c, guidance: float) -> np.ndarray:
        conditional = (y is not None and self.n_classes) or (c is not None and self.n_continuous)
        n = len(x)
        on, off = np.ones(n), np.zeros(n)
        if not conditional or guidance == 0.0:
            return self.predict(x, t, None, c, off)
        if guidance == 1.0:
            return self.predict(x, t, y, c, on)
        both = self.predict(np.concatenate([x, x]), t,
                            None if y is None else np.concatenate([y, np.full(n, self.n_classes)]),
                            None if c is None else np.concatenate([c, c]), np.concatenate([on, off]))
        cond, uncond = both[:n].astype(np.float64), both[n:].astype(np.float64)
        return uncond + guidance * (cond - uncond)

    def sample(self, n: int, *, label: int | None = None, labels=None, condition=None, guidance: float = 2.0,
               steps: int = 50, seed: int = 0, noise: np.ndarray | None = None) -> np.ndarray:
        """``n`` images in [0, 1], (N, C, H, W) float32, by deterministic DDIM."""
        if labels is None and label is not None:
            labels = np.full(n, int(label))
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            if not self.n_classes or labels.min() < 0 or labels.max() >= self.n_classes:
                raise LatentbridgeError(f"class labels must be in 0..{self.n_classes - 1}")
        c = None if condition is None else np.tile(np.asarray(condition, np.float32), (n, 1))
        x = (np.random.default_rng(seed).standard_normal((n, *self.image_shape)) if noise is None
             else np.asarray(noise)).astype(np.float64)
        ac = self.alphas_cumprod
        sequence = list(self.timesteps(steps))
        for t, t_next in zip(sequence, sequence[1:] + [-1]):  # each step to the next timestep of the sequence
            out = self.guided(x.astype(np.float32), t, labels, c, guidance).astype(np.float64)
            a = ac[t]
            a_prev = ac[t_next] if t_next >= 0 else 1.0
            if self.prediction == "epsilon":
                x0, eps = (x - np.sqrt(1 - a) * out) / np.sqrt(a), out
            else:
                x0, eps = np.sqrt(a) * x - np.sqrt(1 - a) * out, np.sqrt(a) * out + np.sqrt(1 - a) * x
            if self.clip is not None:  # the noise follows the clipped clean sample (DDIM with clipped output)
                x0 = np.clip(x0, -self.clip, self.clip)
                eps = (x - np.sqrt(a) * x0) / np.sqrt(1 - a)
            x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
        return ((np.clip(x, -1, 1) + 1) / 2).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m latentbridge.edge_sampler",
                       description="Sample images from an exported diffusion denoiser (numpy + onnxruntime).")
    p.add_argument("model", help="the .onnx file written by `latentbridge export`")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--class", dest="label", help="class of every sample, its name or index (default: classes in turn)")
    p.add_argument("--condition", type=float, action="append",
                   help="a continuous condition value, repeated for each of the model's (default: none, unconditional)")
    p.add_argument("--guidance", type=float, help="default: the model's sampling.guidance")
    p.add_argument("--steps", type=int, help="default: the model's sampling.steps")
    p.add_argument("--batch-size", type=int, help="samples drawn at once (default: the model's sampling.batch_size); "
                                                  "less memory with fewer")
    p.add_argument("--seed", type=int, default=0, help="seed of numpy's starting noise (not the images `latentbridge "
                   "sample --seed` draws: its noise is torch's)")
    p.add_argument("--out", required=True, help="folder for sample_NNNN.png, grid.png, samples.npz and settings.json "
                                                "(the settings, each file's class)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    args = p.parse_args(argv)
    tolerant_stdout()
    try:
        from latentbridge.io.images import write_image_samples
        from latentbridge.outputs import check_target, output_folder, protect_arguments
        from latentbridge.utils import check_seed
        from latentbridge.sampling_args import class_index, condition_warning, guidance_problem, unlearnt_null_warning

        protect_arguments(args)  # --force never replaces the folder holding the model

        if args.num_samples < 1:
            raise LatentbridgeError(f"--num-samples must be at least 1, got {args.num_samples}")
        check_seed(args.seed)  # numpy's generator refuses negatives (a traceback)
        check_target(Path(args.out), args.force)  # before the sampling
        d = OnnxDenoiser(args.model)
        sampling = d.meta.get("sampling") or {}
        steps = int(sampling.get("steps", 50)) if args.steps is None else args.steps  # 50 whatever the model's was
        d.timesteps(steps)  # its range checked before anything runs
        batch = int(sampling.get("batch_size", 64)) if args.batch_size is None else args.batch_size
        if batch < 1:
            raise LatentbridgeError(f"--batch-size must be at least 1, got {batch}")
        labels = None
        if args.label is not None:
            named = [str(n) for n in d.meta.get("class_names") or []]
            labels = np.full(args.num_samples, class_index(args.label, named, d.n_classes))
        elif d.n_classes:
            labels = np.arange(args.num_samples) % d.n_classes
        g = d.meta["sampling"]["guidance"] if args.guidance is None else args.guidance
        if problem := guidance_problem(g):
            raise LatentbridgeError(f"--guidance: {problem}")
        condition = args.condition
        if condition is not None:
            if len(condition) != d.n_continuous:
                raise LatentbridgeError(f"the model takes {d.n_continuous} continuous condition(s) "
                                        f"({d.meta.get('condition_names')}), got {len(condition)} --condition")
            if not np.all(np.isfinite(condition)):
                raise LatentbridgeError(f"--condition: every value must be a finite number, got {condition}")
        if said := condition_warning(condition, d.meta.get("condition_names"), d.meta.get("condition_range"),
                                     d.n_continuous, float(d.meta.get("label_dropout", 0.1))):
            print(f"warning: {said}", file=sys.stderr)  # as `latentbridge sample` warns (exports before: no range)
        if labels is None and condition is None and args.guidance is not None:  # as `latentbridge sample` says
            print(f"warning: --guidance {args.guidance:g} has no effect: "
                  f"{'no --condition given' if d.n_continuous else 'the model is unconditional'} (none recorded with "
                  "the samples)", file=sys.stderr)
        if (labels is not None or condition is not None) and (
                said := unlearnt_null_warning(g, float(d.meta.get("label_dropout", 0.1)))):
            print(f"warning: {said}", file=sys.stderr)
        # in batches (all at once took 1.7 GB for 4,000 small images, and onnxruntime's allocation error for more),
        # from one draw of the noise: the same images whatever the batch size
        noise = np.random.default_rng(args.seed).standard_normal((args.num_samples, *d.image_shape))
        parts = []
        for i in range(0, args.num_samples, batch):
            try:
                parts.append(d.sample(len(noise[i:i + batch]), labels=None if labels is None else labels[i:i + batch],
                                      condition=condition, guidance=g, steps=steps, noise=noise[i:i + batch]))
            except (LatentbridgeError, MemoryError):
                raise
            except Exception as e:  # noqa: BLE001 - onnxruntime's own errors (memory) are said in one line
                raise LatentbridgeError(f"{args.model}: onnxruntime failed on a batch of {batch} samples "
                                        f"({str(e).splitlines()[0][:200]}); a smaller --batch-size needs less memory") \
                    from None
        images = np.concatenate(parts)
        names = [str(c) for c in d.meta.get("class_names") or []] or [str(k) for k in range(d.n_classes)]
        with output_folder(args.out, force=args.force) as tmp:
            # what was drawn, as `latentbridge sample` keeps it: each file's class (the classes in turn) and the rest
            guided = None if labels is None and condition is None else g  # (None: nothing to guide towards)
            write_image_samples(
                tmp, images, {"model": str(args.model), "scheduler": "ddim", "steps": steps, "guidance": guided,
                              "eta": 0.0, "seed": args.seed, "n_samples": args.num_samples},
                labels, names if labels is not None else (),
                None if condition is None else np.tile(np.asarray(condition, np.float64), (len(images), 1)),
                list(d.meta.get("condition_names") or []))
    except (LatentbridgeError, MemoryError) as e:  # a MemoryError: the noise or the images of too many samples
        print(f"error: {memory_text(e, p.prog) if out_of_memory(e) else e}", file=sys.stderr)
        return 2
    except OSError as e:  # the samples cannot be written (a full disk, a read-only folder: a traceback)
        print(f"error: {os_error_text(e) if e.filename else f'the samples cannot be written ({e.strerror or e})'}",
              file=sys.stderr)
        return 2
    print(f"wrote {len(images)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
