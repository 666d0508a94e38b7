"""Audio figures: spectrogram rows (input | reconstruction | difference) and a waveform overlay."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentbridge.report.common import _MAX_TITLE, _new_figure, _paired_arrays, _save, _tight, _titles, middle_cut

__all__ = ["feature_axes", "plot_spectrogram_pairs", "plot_waveform_overlay", "stft_axes"]

_MAX_WAVEFORM_ROWS = 4


def plot_spectrogram_pairs(
    inputs,
    reconstructions,
    titles: Sequence[str] | None,
    path: str | Path,
    sample_rate: float | None = None,
    hop_length: int | None = None,
    *,
    frequencies_hz=None,
    unit: str = "",
) -> Path:
    """Rows of ``input | reconstruction | |input - reconstruction|`` for (n, F, T) arrays; the inputs alone,
    one per row, when ``reconstructions`` is None (a model that reconstructs nothing).

    Input and reconstruction in a row share one colour scale. When ``sample_rate`` and
    ``hop_length`` are both given the time axis is in seconds, otherwise in frames. ``frequencies_hz``: each
    row's centre frequency (F values, or F / C for C channels stacked upwards), written on the frequency axis (mel
    bands where they are not evenly spaced), else the rows are counted; ``unit`` names the values on the colour bars
    (e.g. "dB"). :func:`feature_axes` gives all four for a model's features.
    """
    a, b = _paired_arrays(inputs, inputs if reconstructions is None else reconstructions, "(n, F, T)",
                          "inputs and reconstructions")
    n, n_freq, n_time = a.shape
    if n == 0:
        raise ValueError("no spectrograms to plot")
    titles = _titles(titles, n, "titles", "#{}")  # a long file name cut in its middle
    if sample_rate and hop_length:
        extent = [0.0, n_time * hop_length / sample_rate, 0, n_freq]
        xlabel = "time (s)"
    else:
        extent = [0, n_time, 0, n_freq]
        xlabel = "frame"
    ticks, ylabel = _frequency_ticks(frequencies_hz, n_freq)

    cols = 1 if reconstructions is None else 3
    fig = _new_figure(4.0 * cols, 2.6 * n + 0.4)
    for i in range(n):
        diff = np.abs(a[i] - b[i])
        both = np.concatenate([a[i].ravel(), b[i].ravel()])
        both = both[np.isfinite(both)]
        vmin, vmax = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        panels = (
            (a[i], "input", "magma", vmin, vmax),
            (b[i], "reconstruction", "magma", vmin, vmax),
            (diff, "|difference|", "viridis", None, None),
        )[:cols]
        for j, (img, name, cmap, lo, hi) in enumerate(panels):
            ax = fig.add_subplot(n, cols, cols * i + j + 1)
            im = ax.imshow(img, origin="lower", aspect="auto", cmap=cmap, vmin=lo, vmax=hi, extent=extent)
            # (a file name, its window and score ran into the next panel's title: wrapped to the panel's width)
            title = f"{titles[i]}: {name}" if j == 0 else name
            wrap = textwrap.fill(title, 50, break_long_words=False, break_on_hyphens=False)
            ax.set_title(wrap if cols > 1 else title, fontsize=9)
            if i == n - 1:
                ax.set_xlabel(xlabel)
            if ticks is not None:
                ax.set_yticks(*ticks)
            if j == 0:
                ax.set_ylabel(ylabel)
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            if unit:
                bar.set_label(unit, fontsize=8)
    _tight(fig)
    return _save(fig, path)


def _frequency_ticks(frequencies_hz, n_rows: int, n_ticks: int = 5):
    """((positions, labels) of the frequency axis, its label) for rows centred at ``frequencies_hz`` (tiled over
    channels stacked upwards); (None, "bin") without them."""
    if frequencies_hz is None:
        return None, "bin"
    f = np.asarray(frequencies_hz, dtype=np.float64).reshape(-1)
    if f.size == 0 or n_rows % f.size:
        raise ValueError(f"{f.size} row frequencies for {n_rows} spectrogram rows")
    steps = np.diff(f)
    even = steps.size == 0 or np.allclose(steps, steps[0], rtol=1e-3)
    f = np.tile(f, n_rows // f.size)
    rows = np.unique(np.linspace(0, n_rows - 1, n_ticks).round().astype(int))
    def hz(v):  # whole hertz from 100 Hz up, three digits below (a 0-50 Hz axis read 12 and 38 for 12.5 and 37.5)
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"

    return (rows + 0.5, [hz(f[r]) for r in rows]), "frequency (Hz)" if even else "mel band centre (Hz)"


def feature_axes(features) -> dict:
    """:func:`plot_spectrogram_pairs` keywords (``sample_rate``, ``hop_length``, ``frequencies_hz``, ``unit``) of
    features a model computes with ``features`` (its saved spectrogram parameters)."""
    from latentbridge.data.survey import band_centres_hz

    power = "" if features.power == 1 else f"^{features.power:g}"
    if features.normalize != "none":
        unit = "min-max scaled per window"
    else:
        unit = {"db": "dB", "log": f"ln magnitude{power}", "linear": f"magnitude{power}"}[features.scale]
    return {"sample_rate": features.sample_rate, "hop_length": features.hop_length,
            "frequencies_hz": band_centres_hz(features, features.sample_rate), "unit": unit}


def stft_axes(sample_rate: float, n_fft: int, hop_length: int, unit: str = "ln magnitude") -> dict:
    """:func:`plot_spectrogram_pairs` keywords of an STFT (``n_fft // 2 + 1`` rows) at ``sample_rate``."""
    return {"sample_rate": sample_rate, "hop_length": hop_length,
            "frequencies_hz": np.fft.rfftfreq(int(n_fft), 1.0 / float(sample_rate)), "unit": unit}


def plot_waveform_overlay(
    reference,
    reconstruction,
    sample_rate: float | None,
    path: str | Path,
    title: str = "",
    channels: Sequence[int] | None = None,
) -> Path:
    """Original vs reconstructed waveform, one row per channel (at most 4 rows).

    ``reference`` and ``reconstruction`` are (C, T) (or (T,) for one channel) with equal shapes.
    ``channels`` picks which channels to draw (default: the first up to 4; only the first 4
    of a longer list are drawn). Each row's title gives the channel's SI-SDR. With a
    ``sample_rate`` the time axis is in seconds, otherwise in samples.
    """
    from latentbridge.metrics.signal import si_sdr

    a, b = _paired_arrays(reference, reconstruction, "(C, T)", "reference and reconstruction")
    n_ch, n_t = a.shape
    if n_ch == 0 or n_t == 0:
        raise ValueError(f"no waveform to plot (shape {a.shape})")
    if channels is None:
        chans = list(range(min(n_ch, _MAX_WAVEFORM_ROWS)))
    else:
        chans = [int(c) for c in channels][:_MAX_WAVEFORM_ROWS]
        if not chans:
            raise ValueError("channels is empty")
        bad = [c for c in chans if not -n_ch <= c < n_ch]
        if bad:
            raise ValueError(f"channel(s) {bad} out of range for {n_ch} channels")
        chans = [c % n_ch for c in chans]
    if sample_rate:
        t = np.arange(n_t) / float(sample_rate)
        xlabel = "time (s)"
    else:
        t = np.arange(n_t)
        xlabel = "sample"
    ok = np.all(np.isfinite(a), axis=1) & np.all(np.isfinite(b), axis=1)

    fig = _new_figure(10.0, 2.0 * len(chans) + 0.6)
    axes = []
    for row, c in enumerate(chans):
        ax = fig.add_subplot(len(chans), 1, row + 1, sharex=axes[0] if axes else None)
        axes.append(ax)
        ax.plot(t, a[c], color="black", lw=0.8, alpha=0.8, label="original")
        ax.plot(t, b[c], color="tab:orange", lw=0.8, alpha=0.75, label="reconstruction")
        name = f"channel {c}"
        if ok[c]:
            name += f" (SI-SDR {float(si_sdr(b[c], a[c])):.1f} dB)"
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("amplitude")
        ax.grid(alpha=0.3)
        if row == 0:
            ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(middle_cut(title, _MAX_TITLE))
    _tight(fig)
    return _save(fig, path)
