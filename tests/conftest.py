"""Shared test fixtures.

``virtual_microphone``: a real input device on machines without a sound card.  A private
PulseAudio daemon is started with a null sink whose monitor is the default source, so whatever
``paplay`` plays into the sink is what the default input device records.  See
``shared/notes/virtual-microphone.md``.  CI needs the Debian packages ``pulseaudio``,
``pulseaudio-utils`` (pactl, paplay) and ``libportaudio2``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest


def _run(*args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def _pulse_ready() -> bool:
    try:
        return _run("pactl", "info", timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class VirtualMicrophone:
    """A PulseAudio null sink whose monitor is the default input.

    ``play(wav)`` starts ``paplay --device=<sink> wav`` in the background and returns the
    Popen; what it plays is heard by the default input device.
    """

    def __init__(self, sink: str, input_device: int, input_name: str):
        self.sink = sink
        self.source = f"{sink}.monitor"
        self.input_device = input_device  # PortAudio index of the default input device
        self.input_name = input_name
        self._procs: list[subprocess.Popen] = []

    def play(self, wav_path: str | Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["paplay", f"--device={self.sink}", str(wav_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        self._procs.clear()


def _reinitialize_portaudio(sd) -> None:
    """PortAudio lists devices when it is initialised: re-initialise it so that it sees the
    PulseAudio server started (or stopped) after ``import sounddevice``."""
    sd._terminate()
    sd._initialize()


def _stop_daemon() -> None:
    _run("pulseaudio", "--kill", timeout=15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _run("pulseaudio", "--check").returncode == 0:
        time.sleep(0.1)


@pytest.fixture(scope="session")
def virtual_microphone(tmp_path_factory):
    """A private PulseAudio daemon (its own runtime folder and socket, so other test runs on the same
    machine cannot stop it or change its default source) with a null sink whose monitor is the
    default input."""
    for tool, package in (("pulseaudio", "pulseaudio"), ("pactl", "pulseaudio-utils"),
                          ("paplay", "pulseaudio-utils")):
        if shutil.which(tool) is None:
            pytest.skip(f"virtual microphone needs `{tool}` (apt-get install {package})")
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        pytest.skip(f"virtual microphone needs sounddevice with PortAudio (libportaudio2): {exc}")

    runtime = tmp_path_factory.mktemp("pulse")
    private = {"PULSE_RUNTIME_PATH": str(runtime / "run"), "PULSE_STATE_PATH": str(runtime / "state"),
               "PULSE_SERVER": f"unix:{runtime / 'run' / 'native'}"}
    saved_env = {k: os.environ.get(k) for k in private}
    os.environ.update(private)
    started = False
    sink = f"latentbridge_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    previous_default = tuple(sd.default.device)
    vm: VirtualMicrophone | None = None
    try:
        try:
            result = _run("pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "--disallow-exit",
                          timeout=30)
        except subprocess.TimeoutExpired:
            pytest.skip("pulseaudio did not start within 30 s")
        if result.returncode != 0:
            pytest.skip(f"pulseaudio could not start: {(result.stderr or result.stdout).strip()}")
        started = True
        deadline = time.monotonic() + 10
        while not _pulse_ready():
            if time.monotonic() > deadline:
                pytest.skip("pulseaudio started but `pactl info` cannot reach it")
            time.sleep(0.1)
        result = _run("pactl", "load-module", "module-null-sink", f"sink_name={sink}")
        if result.returncode != 0:
            pytest.skip(f"cannot load module-null-sink: {result.stderr.strip()}")
        result = _run("pactl", "set-default-source", f"{sink}.monitor")
        if result.returncode != 0:
            pytest.skip(f"cannot set the default source: {result.stderr.strip()}")

        _reinitialize_portaudio(sd)
        devices = sd.query_devices()
        by_name = {d["name"]: d["index"] for d in devices if d["max_input_channels"] > 0}
        try:
            default_in = sd.query_devices(kind="input")
        except Exception:  # noqa: BLE001 - no default input device
            default_in = None
        if default_in is not None and default_in["name"] in ("default", "pulse"):
            index = int(default_in["index"])
        elif "pulse" in by_name or "default" in by_name:
            # Another host API or a real card is PortAudio's default: point it at PulseAudio.
            index = int(by_name.get("pulse", by_name.get("default")))
            sd.default.device = (index, previous_default[1])
        else:
            pytest.skip(
                "PortAudio does not see PulseAudio (no 'pulse'/'default' ALSA input device; "
                f"input devices: {sorted(by_name)}); is libasound2-plugins installed?"
            )
        name = sd.query_devices(index)["name"]
        vm = VirtualMicrophone(sink, index, name)
        yield vm
    finally:
        if vm is not None:
            vm.stop_all()
        sd.default.device = previous_default
        if started:
            _stop_daemon()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            _reinitialize_portaudio(sd)
        except Exception:  # noqa: BLE001 - best effort
            pass


# --------------------------------------------------------------------------- anomaly fixtures

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"

#: a small, fast VAE (the default detector is closed-form): enough to exercise every path, not to detect well
FAST = ["model.name=conv_vae", "train.max_epochs=3", "model.channels=[8,16]", "model.latent_dim=4", "train.progress_bar=false",
        "train.batch_size=16", "beta.warmup_steps=10"]


@pytest.fixture(scope="session")
def machine_data(tmp_path_factory):
    """A small synthetic rotating-machine set (train/normal, test/normal, test/anomalous)."""
    from latentbridge.data.synth.machine import synth_machine

    root = tmp_path_factory.mktemp("machine") / "data"
    synth_machine(root, seed=3, duration_s=4.0, n_train=6, n_test_normal=3, n_test_anomalous=4)
    return root


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    os.environ["LATENTBRIDGE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def small_classifiers(feature_cache):
    """Quick digit judges in the cache folder that evaluate/analyze load (so they are not trained in
    full): the MNIST and FSDD classifiers and the waveform judge (fitted on 300 FSDD training clips)."""
    from latentbridge.config import load_config
    from latentbridge.tasks.classify import classifier_config, classifier_dir, train_classifier
    from latentbridge.tasks.judges import fit_waveform_judge, judge_dir

    mnist_dir = REPO.parent / "shared" / "data" / "mnist"
    for kind, root in (("mnist", mnist_dir), ("fsdd", FSDD.parent)):
        if not (classifier_dir(kind) / "config.json").exists():
            cfg = classifier_config(kind, root, **{"train.max_epochs": 3, "data.n_train": 1500, "data.n_test": 300,
                                                   "train.progress_bar": False})
            train_classifier(cfg, classifier_dir(kind), force=True)
    spec = load_config(REPO / "configs" / "avdigits.yaml").transform_spec()
    if not (judge_dir(spec) / "judge.npz").is_file():
        fit_waveform_judge(FSDD.parent, spec, judge_dir(spec), limit=300)


@pytest.fixture(scope="session")
def fitted_model(machine_data, feature_cache, tmp_path_factory):
    """``latentbridge anomaly fit`` on the small machine set (in-process CLI)."""
    from latentbridge.cli import main

    out = tmp_path_factory.mktemp("fit") / "model"
    args = ["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out)]
    for o in FAST:
        args += ["-o", o]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a test module (``pytestmark = pytest.mark.usefixtures(...)``): tiny
    models gain nothing from a second thread, and on the shared 2-core machine two threads that wait for
    each other made runs 2-15x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cuda_like_autocast(monkeypatch):
    """CPU autocast made as strict as CUDA's where they differ, so bf16-mixed crashes seen on a GPU fail here too:
    CPU autocast runs ``binary_cross_entropy`` in float32 where CUDA autocast raises, and passes bfloat16 tensors
    to ``torch.stft`` / ``istft`` / ``polar`` quietly upcast where CUDA has no bfloat16 kernel. Yields the device
    type to autocast on ("cpu")."""
    import torch
    import torch.nn.functional as F

    half = (torch.bfloat16, torch.float16)

    def refuse_under_autocast(name, fn):
        def wrapped(*args, **kwargs):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError(f"{name} is unsafe to autocast (CUDA autocast raises here)")
            return fn(*args, **kwargs)
        return wrapped

    def refuse_half(name, fn):
        def wrapped(*args, **kwargs):
            if any(isinstance(a, torch.Tensor) and a.dtype in half for a in (*args, *kwargs.values())):
                raise RuntimeError(f"{name} of a half-precision tensor (no such CUDA kernel)")
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(F, "binary_cross_entropy", refuse_under_autocast("binary_cross_entropy",
                                                                         F.binary_cross_entropy))
    for name in ("stft", "istft", "polar"):
        monkeypatch.setattr(torch, name, refuse_half(name, getattr(torch, name)))
    yield "cpu"


# --------------------------------------------------------------------------- serving fixtures


@pytest.fixture(scope="session")
def detector_model(feature_cache, tmp_path_factory):
    """An anomaly detector that tells this machine's normal sound from a noisy fault (10 normal
    recordings, 12 epochs: about 10 s), with ``normal.wav`` (4 s) and ``fault.wav`` (8 s: the
    normal recording, then again with loud broadband noise from 5 to 7 s) beside it.

    Recorded at 48 kHz, as a browser's microphone is, and read by the 16-kHz model through the
    package's resampler: features near the model's Nyquist frequency are then alike whether a
    file is read or a 44.1/48-kHz stream is resampled window by window (a 16-kHz recording
    upsampled by the browser and downsampled again loses its top mel band, which a model
    trained on native 16-kHz audio takes for an anomaly)."""
    import numpy as np

    from latentbridge.cli import main
    from latentbridge.data.synth.machine import synth_machine
    from latentbridge.io import read_audio, write_wav

    root = tmp_path_factory.mktemp("detector")
    synth_machine(root / "data", seed=5, duration_s=4.0, n_train=10, n_test_normal=1, n_test_anomalous=1,
                  sample_rate=48000)
    args = ["anomaly", "fit", str(root / "data" / "train" / "normal"), "--out", str(root / "model")]
    # a 16-kHz model: the survey would keep the data's own 48 kHz
    for o in ["model.name=conv_vae", "audio.sample_rate=16000", "train.max_epochs=12", "model.channels=[8,16]", "model.latent_dim=8", "train.progress_bar=false",
              "train.batch_size=8", "beta.warmup_steps=10"]:
        args += ["-o", o]
    assert main(args) == 0
    wave, sr = read_audio(next((root / "data" / "test" / "normal").glob("*.wav")))
    write_wav(root / "normal.wav", wave, sr)
    faulty = wave.copy()
    faulty[sr:3 * sr] += np.random.default_rng(0).normal(0, 0.3 * np.abs(wave).max(), 2 * sr).astype(np.float32)
    write_wav(root / "fault.wav", np.concatenate([wave, faulty]), sr)
    return root / "model"


def tiny_multimodal_folders(root: Path) -> dict[str, Path]:
    """Untrained but complete model folders of the two multimodal workflows, from their presets at
    a tiny size: ``bridge`` (vibration → crack mask, 2 channels at 100 Hz, 10-s windows) and
    ``digits`` (spoken ↔ written digits, latent bridge fitted on random latents)."""
    import torch

    from latentbridge.config import config_to_dict, load_config, transform_spec
    from latentbridge.models.hub import save_model
    from latentbridge.models.registry import build_model

    torch.manual_seed(0)
    out = {}
    cfg = load_config(REPO / "configs" / "mmvae_bridge.yaml",
                      ["model.channels=[4,8]", "model.mask_channels=[4,8]", "model.latent_dim=4",
                       "vibration.mask_height=16", "vibration.mask_width=48", "vibration.resample_to=null"])
    data = cfg.example_data()
    model = build_model(cfg.model, **data).eval()
    out["bridge"] = save_model(root / "bridge", model, config=config_to_dict(cfg),
                               transform=transform_spec(cfg, sample_rate=data["sample_rate"],
                                                        n_channels=data["n_channels"]),
                               extra={"mask_threshold": {"threshold": 0.3, "calibrated_on": "test"},
                                      "data": {"mask_size": [64, 192]}},  # (its labels' size: 4 x the grid)
                               card="# tiny bridge model\n")
    cfg = load_config(REPO / "configs" / "avdigits.yaml",
                      ["model.channels=[4,8]", "model.image_channels=[4,8]", "model.latent_dim=4"])
    model = build_model(cfg.model, **cfg.example_data()).eval()
    g = torch.Generator().manual_seed(0)
    model.fit_bridge(torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g))
    out["digits"] = save_model(root / "digits", model, config=config_to_dict(cfg), transform=transform_spec(cfg),
                               card="# tiny digits model\n")
    return out


def tiny_generative_folders(root: Path) -> dict[str, Path]:
    """Untrained but complete model folders of the generative workflows at a tiny size: ``ddpm``
    (class-conditional 28 x 28 denoiser, 50 training timesteps, classes "zero".."nine") and
    ``cvae`` (spatial conditional VAE of 3-channel maps, 16-px patches)."""
    import torch

    from latentbridge.config import config_to_dict, load_config, transform_spec
    from latentbridge.models.hub import save_model
    from latentbridge.models.registry import build_model

    torch.manual_seed(0)
    out = {}
    cfg = load_config(REPO / "configs" / "ddpm_mnist.yaml",
                      ["model.channels=[4,8,8]", "diffusion.train_timesteps=50", "sampling.steps=5"])
    model = build_model(cfg.model, **cfg.example_data()).eval()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    out["ddpm"] = save_model(root / "ddpm", model, config=config_to_dict(cfg), transform=transform_spec(cfg),
                             extra={"class_names": names, "condition_names": []}, card="# tiny ddpm\n")
    cfg = load_config(REPO / "configs" / "cvae_tissue.yaml",
                      ["model.channels=[8,16]", "model.latent_dim=4", "model.condition_dim=8", "model.heads=2",
                       "patches.size=16", "patches.overlap=4", "patches.samples=2", "data.mz=[700.0,710.0,720.0]"])
    model = build_model(cfg.model, **cfg.example_data()).eval()
    out["cvae"] = save_model(root / "cvae", model, config=config_to_dict(cfg), transform=transform_spec(cfg, n_channels=3),
                             extra={"calibration": {"reference": "none"}}, card="# tiny spatial cvae\n")
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``latentbridge serve`` in a subprocess on 127.0.0.1 (PYTHONPATH passed on)."""

    def __init__(self, model_dirs, *args: str, timeout: float = 60.0):
        import sys

        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.log = open(os.devnull, "w") if not os.environ.get("LATENTBRIDGE_SERVE_LOG") else open(
            os.environ["LATENTBRIDGE_SERVE_LOG"], "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "latentbridge", "serve", *map(str, model_dirs),
                                      "--port", str(self.port), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"latentbridge serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2, params={"api_key": self._key(args)}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("latentbridge serve did not answer /healthz in time")
            time.sleep(0.2)

    @staticmethod
    def _key(args) -> str | None:
        args = list(args)
        return args[args.index("--api-key") + 1] if "--api-key" in args else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def mounted(folder: Path, *options: str):
    """``folder`` made a mount point for the block (``mount OPTIONS... folder``: a small tmpfs, a disk that fills; a
    bind mount, a Docker volume), unmounted after; the test skipped where mounting needs root or is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", *options, str(folder)], capture_output=True).returncode != 0:
        pytest.skip("mounting a file system needs root and the mount command")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
