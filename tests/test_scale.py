"""Large data: too little memory for a recording (no bad file, never skipped), out-of-memory errors as one line
(exit 2, nothing written), a few long recordings' validation share, the feature cache's size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import FAST
from latentbridge.cli import main

#: numpy's error for the samples of 2 h of 48-kHz stereo (decoding a recording the sweep's 6-GB cap refused)
TWO_HOURS = ((7200 * 48000, 2), np.dtype(np.float32))


def _o(extra=()):
    return [x for o in [*FAST, *extra] for x in ("-o", o)]


def _array_memory_error(shape, dtype) -> MemoryError:
    from numpy._core._exceptions import _ArrayMemoryError

    return _ArrayMemoryError(shape, dtype)


def _decoder_short_of_memory(monkeypatch, module, name: str) -> list[str]:
    """``module``'s PCM-16 decoder failing for lack of memory on the file called ``name`` (the others decoded); the
    names of the files it was asked for."""
    real, asked = module.read_pcm16, []

    def read_pcm16(f, *args):
        asked.append(Path(f.name.decode() if isinstance(f.name, bytes) else f.name).name)
        if asked[-1] == name:
            raise _array_memory_error(*TWO_HOURS)
        return real(f, *args)

    monkeypatch.setattr(module, "read_pcm16", read_pcm16)
    return asked


def test_too_little_memory_to_decode_is_no_bad_file(machine_data, tmp_path, monkeypatch, capsys):
    """A recording the machine lacks the memory to decode was reported "unreadable or truncated" (exit 2), and with
    skip_bad left out as a bad file, the run going on without good data: now the error is the memory's, named in one
    line with the allocation, whatever skip_bad says, and nothing is written."""
    import latentbridge.io.audio as io_audio
    from latentbridge.io import read_audio

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))  # decoded, not read from the cache
    data = machine_data / "train" / "normal"
    name = sorted(p.name for p in data.glob("*.wav"))[2]
    asked = _decoder_short_of_memory(monkeypatch, io_audio, name)
    with pytest.raises(MemoryError, match="Unable to allocate 2.57 GiB"):
        read_audio(data / name)
    for args, command in ((["anomaly", "fit", str(data), "--skip-bad"], "anomaly fit"),
                          (["train", "--config", str(Path(__file__).parents[1] / "configs" / "anomaly_ae.yaml"),
                            "-o", f"data.train_dir={data}", "-o", "data.skip_bad_files=true"], "train")):
        asked.clear()
        assert main([*args, "--out", str(tmp_path / "out"), *_o()]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: out of memory in `latentbridge {command}` (an allocation of 2.57 GiB failed): "
                              "") and err.count("\n") == 1, err
        assert "give fewer or shorter recordings" in err and "more memory" in err
        assert "skipping" not in err and "unreadable" not in err and "Traceback" not in err
        assert name in asked and not (tmp_path / "out").exists()


def test_too_little_memory_for_a_block_is_no_bad_file(machine_data, monkeypatch):
    """The block reader (the edge scorer's) alike: a MemoryError, not the file's DataError."""
    import latentbridge.io.blockread as blockread
    from latentbridge.io.blockread import RecordingBlocks

    path = sorted((machine_data / "train" / "normal").glob("*.wav"))[0]
    _decoder_short_of_memory(monkeypatch, blockread, path.name)
    with pytest.raises(MemoryError, match="2.57 GiB"):
        RecordingBlocks(path)


def test_out_of_memory_anywhere_is_one_line_and_exit_2(machine_data, tmp_path, monkeypatch, capsys):
    """torch's CPU allocator failing (its RuntimeError, as torch 2.13 words it on Linux) in a training gave a
    traceback and exit 1: one line naming the command, the size and what to lower, exit 2, no run folder."""
    import latentbridge.models.registry as registry

    def build_model(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 2760000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(registry, "build_model", build_model)
    config = str(Path(__file__).parents[1] / "configs" / "anomaly_ae.yaml")
    out = tmp_path / "run"
    assert main(["train", "--config", config, "--out", str(out), "-o",
                 f"data.train_dir={machine_data / 'train' / 'normal'}", *_o()]) == 2
    err = capsys.readouterr().err
    assert err == ("error: out of memory in `latentbridge train` (an allocation of 2.57 GiB failed): lower what the "
                   "run holds at once (-o data.limit=N, -o data.image_size=N, -o train.batch_size=N), give fewer or "
                   "shorter recordings, or run on a machine with more memory\n")
    assert not out.exists()

    def broken(*a, **k):  # an error of the program's own stays a traceback (exit 1)
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)")

    monkeypatch.setattr(registry, "build_model", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["train", "--config", config, "--out", str(out), "-o",
              f"data.train_dir={machine_data / 'train' / 'normal'}", *_o()])
    assert not out.exists()


def test_out_of_memory_errors_are_recognised_with_their_size():
    """numpy's, torch's (CPU, CUDA), and numpy's raised in a DataLoader worker (re-raised by torch as a RuntimeError
    naming it)."""
    import torch
    from torch._utils import ExceptionWrapper

    from latentbridge.errors import allocation_size, memory_text, out_of_memory

    try:
        raise _array_memory_error(*TWO_HOURS)
    except MemoryError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(RuntimeError) as worker:
        wrapped.reraise()
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of "
                                  "79.19 GiB of which 3.06 MiB is free.")
    assert [allocation_size(e) for e in (_array_memory_error((10 ** 14,), np.dtype(np.int64)), worker.value, cuda)] \
        == ["728 TiB", "2.57 GiB", "20 MiB"]
    assert all(map(out_of_memory, (worker.value, cuda, MemoryError())))
    assert not out_of_memory(RuntimeError("Caught ValueError in DataLoader worker process 0"))
    assert memory_text(cuda, "latentbridge train") == ("out of GPU memory in `latentbridge train` (an allocation of "
                                                       "20 MiB failed): a smaller -o train.batch_size=N, or a device "
                                                       "with more memory")
    assert memory_text(MemoryError(), "latentbridge anomaly score").startswith(
        "out of memory in `latentbridge anomaly score` (an allocation failed): give fewer or shorter files")


def test_too_little_memory_in_a_scoring_worker_is_no_bad_file(fitted_model, machine_data, tmp_path, monkeypatch,
                                                              capsys):
    """``anomaly score --skip-bad`` decodes in DataLoader worker processes: their MemoryError comes back as torch's
    RuntimeError naming it; it was a traceback (exit 1), the file never named. One line, exit 2, no scores written."""
    import latentbridge.io.audio as io_audio

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    data = machine_data / "test" / "normal"
    _decoder_short_of_memory(monkeypatch, io_audio, sorted(p.name for p in data.glob("*.wav"))[1])
    assert main(["anomaly", "score", str(fitted_model), str(data), "--skip-bad", "--workers", "2", "--out",
                 str(tmp_path / "scores")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory in `latentbridge anomaly score` (an allocation of 2.57 GiB failed): "
                          "give fewer or shorter files at a time (--workers 1") and err.count("\n") == 1, err
    assert not (tmp_path / "scores").exists()
