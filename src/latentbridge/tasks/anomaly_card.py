"""The model card (``README.md``) of an anomaly model folder: its data, input, decision and training, in words."""

from __future__ import annotations

from latentbridge.io.windows import TRIMMED
from latentbridge.training.fit import best_loss_text
from latentbridge.utils import counted, paths_text


def _fitted(training: dict) -> str:
    if not training.get("epochs"):  # a closed-form detector
        return (f"fitted in closed form (no gradient training) in {max(training['seconds'], 0.01):.2g} s once the "
                "features were computed")
    return f"{training['epochs']} epochs, {best_loss_text(training)}; {training['seconds']} s"


def model_card(cfg, anomaly: dict, data: dict, training: dict) -> str:
    f, a = cfg.features, cfg.audio
    feat = (f"{f.kind} spectrogram, n_fft {f.n_fft}, hop {f.hop_length}, window {f.window}, "
            + (f"{f.n_mels} mel bands {f.fmin:g}–{f.fmax or a.sample_rate / 2:g} Hz, " if f.kind == "mel" else "")
            + f"scale {f.scale}, normalize {f.normalize}, {cfg.n_frames} frames per window"
            + (", per-bin standardisation from training data" if f.standardize else ""))
    thr, folders = anomaly["threshold"], paths_text(data["train_dir"])
    rule = {"mean_std": f"mean + {anomaly.get('k')}·σ",
            "quantile": f"quantile for a {anomaly.get('false_alarm_rate')} false-alarm rate",
            "manual": "set by hand with `latentbridge anomaly calibrate --threshold`"}.get(anomaly["method"],
                                                                                          anomaly["method"])
    observed = anomaly.get("observed_false_alarm_rate")
    warning = f"\n- **Warning**: {anomaly['warning']}" if anomaly.get("warning") else ""
    return f"""# latentbridge anomaly model: {cfg.model.name}

{cfg.description or 'Acoustic anomaly detector trained on normal recordings only.'}

## Data
- Training recordings: `{folders}` ({counted(data['n_files'], 'file')}, {data['total_duration_s']:.1f} s;
  {counted(data['n_train_files'], 'file')} / {counted(data['n_train_windows'], 'window')} for training,
  {counted(data['n_val_files'], 'file')} / {counted(data['n_val_windows'], 'window')} held out for calibration\
{", the last part of each in time" if data.get('val_split') == 'time' else ""})
- Skipped files: {len(data['skipped_files'])}; files shorter than one window{TRIMMED if cfg.audio.trim_db else ''} \
(padded): {data.get('n_padded_files', 0)}
- Stored as: {_codecs(data.get('codecs'))}

## Input
{_chosen(data)}- Sample rate: {a.sample_rate} Hz ({_channel_text(a.channel, data.get('channels_read'), data.get('survey'))})
{_columns(a.columns)}\
- Windows: {a.window_s:g} s, hop {a.hop_s:g} s; shorter recordings padded ({a.pad}){
  f", {data['short_recordings']}" if data.get('short_recordings') else ""}; recordings shorter
  than a quarter of a window are refused{'' if not a.trim_db else f"; silence more than {a.trim_db:g} dB below the loudest frame trimmed from both ends of files"}
- Features: {feat}

## Decision
- Score: {anomaly['score']} (higher = more anomalous)
- Threshold: {thr:.6g} ({rule}{'' if anomaly['method'] == 'manual' else f", calibrated on {anomaly['calibrated_on']}"}{
  '' if observed is None else f'; observed false-alarm rate there {observed:.3f}'}){warning}

## Training
- Model: {cfg.model.name} ({', '.join(f'{k} {v}' for k, v in cfg.model.model_dump(exclude={'name'}).items())});
  {_fitted(training)}
- Files: `config.json` (everything needed to rebuild the model and its preprocessing),
  `model.safetensors` (weights), `config.yaml` (resolved training config){
      ", `logs/`, `checkpoints/`" if training.get("epochs") else ""}.

## Limits
Trained on one set of normal conditions: a new microphone, position or machine changes the score
distribution, so recalibrate (`latentbridge anomaly calibrate MODEL_DIR NORMAL_DIR`) or refit before
trusting the threshold there.
"""


def _channel_text(channel, n_read: int | None, survey: dict | None) -> str:
    if channel is None:  # recordings of one channel are not a mix of anything
        return "one channel" if set((survey or {}).get("channels") or {"2": 0}) == {"1"} else "mono mix"
    if channel == "all":
        return f"every channel: {n_read or 'its'} channels, statistics or features per channel"
    return f"channel {channel}"


def _columns(columns: list[str] | None) -> str:
    if not columns:
        return ""
    return (f"- Sensor columns of a CSV, read by their header names in this order: {', '.join(columns)} (a .mat "
            "file's channels by their names; a file that lists them in another order is read in this one, other "
            "columns beside them are left out, one lacking any of them is refused)\n")


def _codecs(counts: dict | None) -> str:
    from latentbridge.io.audio import codec_name, is_lossy

    if not counts:
        return "unknown"
    lossy = {is_lossy(c) for c in counts}
    kind = ("lossless and lossy mixed" if len(lossy) > 1 else
            ("lossy" if lossy == {True} else "lossless") + "; recordings stored the other way are named at scoring")
    return ", ".join(f"{codec_name(c)} x{n}" for c, n in counts.items()) + f" ({kind})"


def _chosen(data: dict) -> str:
    rows = data.get("settings_chosen") or []
    if not rows:
        return ""
    s = data.get("survey") or {}
    head = (f"- Chosen from a survey of the training files ({s.get('n_files')} files; durations "
            f"{s.get('duration_s_percentiles_0_10_50_90_100')} s at the 0/10/50/90/100th percentiles; "
            f"levels spread {s.get('level_spread_db')} dB); settings set in the config were kept:\n")
    return head + "".join(f"  - `{r['key']} = {r['value']}`: {r['reason']}\n" for r in rows)
