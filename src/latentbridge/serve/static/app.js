// The page: pick a model, upload a file (score or predict), or stream the microphone live.
// window.lb holds the latest results, for people poking at the console and for the browser tests.
"use strict";

const lb = (window.lb = { models: [], model: null, result: null, live: { windows: [], messages: [], summary: null } });
const $ = (id) => document.getElementById(id);

function message(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = { detail: r.statusText }; }
  if (r.status === 401) throw new Error("this server needs an API key: open the page as /?api_key=KEY");
  if (!r.ok) {  // a sentence, or one entry per field that could not be read ("steps: Input should be ...")
    const d = body.detail;
    const text = typeof d === "string" ? d : Array.isArray(d)
      ? d.map((x) => `${(x.loc || []).slice(1).join(".") || "request"}: ${x.msg}`).join("; ") : JSON.stringify(d);
    throw new Error(`${r.status}: ${text}`);
  }
  return body;
}

function selectModel(name) {
  const m = lb.models.find((x) => x.name === name);
  lb.model = m;
  const inp = m.input || {};
  const parts = [m.task];
  if (m.threshold !== null && m.threshold !== undefined) parts.push(`threshold ${m.threshold.toPrecision(4)}`);
  if (inp.window_s) parts.push(`${inp.window_s} s windows, hop ${inp.hop_s} s, ${inp.sample_rate} Hz`);
  if (m.unserved) parts.push(`serves nothing here: it ${m.unserved}`);  // why no panel is shown
  $("model-info").textContent = parts.join(" · ");
  const scoring = m.endpoints.includes("score"), enhancing = m.endpoints.includes("enhance");
  $("upload-panel").hidden = !(scoring || enhancing || m.endpoints.includes("predict"));
  $("submit").textContent = scoring ? "Score" : enhancing ? "Enhance" : "Predict";
  $("route-label").hidden = m.task !== "avdigits";
  $("task-label").hidden = $("mask-label").hidden = !enhancing;
  $("file").accept = m.task === "multimodal" ? ".csv,.mat" : m.task === "avdigits" ? "audio/*,.png,.jpg,.jpeg"
    : enhancing ? ".npy,.npz,.tif,.tiff" : "audio/*,.csv,.mat";  // a detector of vibration recordings reads them
  $("rate-label").hidden = !(scoring || m.task === "multimodal");
  $("live-panel").hidden = !m.endpoints.includes("stream");
  // the page's microphone sends one channel: a model of channel K or of every channel needs more
  const mono = inp.channel === null || inp.channel === undefined;
  $("live-start").disabled = !mono;
  $("live-status").textContent = mono ? "idle" : `this model reads ${inp.channel === "all"
    ? `every channel of ${inp.n_channels}` : `channel ${inp.channel}`}; the page's microphone sends one: stream ` +
    "such audio over the WebSocket API (/docs)";
  $("sample-panel").hidden = !m.endpoints.includes("sample");
  $("diffusion-controls").hidden = m.task !== "diffusion";
  if (m.task === "diffusion") {
    const sel = $("sample-class"), names = inp.class_names || [];
    sel.innerHTML = "";
    for (const [value, text] of [["", names.length ? "each in turn" : "none"], ...names.map((n) => [n, n])]) {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = text;
      sel.appendChild(o);
    }
    const d = inp.defaults || {};
    $("sample-guidance").value = d.guidance;
    $("sample-steps").value = d.steps;
    $("sample-scheduler").value = d.scheduler;
  }
  $("sample-result").innerHTML = "";
  $("result").hidden = true;
}

async function loadModels() {
  try {
    lb.models = await api("/api/models");
  } catch (e) {
    message(e.message);
    return;
  }
  const sel = $("model");
  sel.innerHTML = "";
  for (const m of lb.models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = `${m.name} (${m.task})`;
    sel.appendChild(o);
  }
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && lb.models.some((m) => m.name === wanted)) sel.value = wanted;
  if (lb.models.length) selectModel(sel.value);
}

function showScore(r) {
  $("anomaly-result").hidden = false;
  $("predict-result").hidden = true;
  $("decision").textContent = r.decision;
  $("decision").className = r.decision;
  $("result-summary").textContent =
    `file score ${r.file_score.toPrecision(4)} (${r.aggregate} of ${r.n_windows} windows; ` +
    `${r.n_anomalous_windows} above the threshold ${r.threshold.toPrecision(4)}) · ${r.duration_s.toFixed(2)} s`;
  LBCharts.timeline($("timeline"), r.windows, r.threshold);
  if (r.spectrogram) LBCharts.spectrogram($("spectrogram"), r.spectrogram);
}

// what the server said of the file (a codec, level, clipping, a header never finalised, ...), beside the decision
function showWarnings(r) {
  const items = (r.warnings || []).slice();
  if (r.padded && lb.model && lb.model.input) {
    items.push(`shorter than one ${lb.model.input.window_s}-s window: padded to one window`);
  }
  showList($("result-warnings"), items);
}

function showList(box, items) {
  box.innerHTML = "";
  for (const text of items) {
    const li = document.createElement("li");
    li.textContent = text;
    box.appendChild(li);
  }
  box.hidden = !items.length;
}

function showImage(fig, img, b64, caption) {
  $(fig).hidden = !b64;
  if (b64) $(img).src = "data:image/png;base64," + b64;
  if (caption) $("cap-main").textContent = caption;
}

function showPrediction(r) {
  $("anomaly-result").hidden = true;
  $("predict-result").hidden = false;
  ["fig-input", "fig-main", "fig-prob", "fig-spec"].forEach((f) => ($(f).hidden = true));
  $("player").hidden = true;
  if (r.kind === "vibration_to_mask") {
    $("decision").textContent = `damage extent ${r.damage_extent.toFixed(3)}`;
    $("decision").className = r.crack_fraction > 0 ? "anomalous" : "normal";
    $("result-summary").textContent = `${r.n_windows} windows · ${r.n_channels} channels at ${r.sample_rate} Hz · ` +
      `crack pixels ${(100 * r.crack_fraction).toFixed(1)} % (threshold ${r.mask_threshold})`;
    showImage("fig-main", "img-main", r.mask_png, "predicted crack mask");
    showImage("fig-prob", "img-prob", r.mask_probability_png);
  } else if (r.kind === "audio_to_image") {
    $("decision").textContent = "spoken digit → image";
    $("decision").className = "";
    $("result-summary").textContent = `route ${r.route}`;
    showImage("fig-spec", "img-spec", r.spectrogram_png);
    showImage("fig-main", "img-main", r.image_png, "generated image");
  } else {
    $("decision").textContent = "image → spoken digit";
    $("decision").className = "";
    $("result-summary").textContent = `route ${r.route} · ${r.duration_s.toFixed(2)} s at ${r.sample_rate} Hz`;
    showImage("fig-input", "img-input", r.input_image_png);
    showImage("fig-spec", "img-spec", r.spectrogram_png);
    $("player").src = "data:audio/wav;base64," + r.wav;
    $("player").hidden = false;
  }
}

function figure(b64, caption) {
  const fig = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
  img.src = "data:image/png;base64," + b64;
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

function showEnhanced(r) {
  $("anomaly-result").hidden = $("predict-result").hidden = true;
  const box = $("enhance-result");
  box.hidden = false;
  box.innerHTML = "";
  $("decision").textContent = `${r.task}: ${r.shape[0]} x ${r.shape[1]} x ${r.shape[2]} maps`;
  $("decision").className = "";
  $("result-summary").textContent = `${r.n_tiles} tiles in ${r.seconds.toFixed(1)} s · ` +
    `enhanced.npy and uncertainty.npy are in the API's answer (enhanced_npy, uncertainty_npy)`;
  for (const p of r.panels) {
    const row = document.createElement("div");
    row.className = "images";
    row.append(figure(p.input_png, `${p.label}: input`), figure(p.enhanced_png, `${p.label}: ${r.task}`),
      figure(p.uncertainty_png, `${p.label}: uncertainty (σ)`));
    box.appendChild(row);
  }
}

async function upload(ev) {
  ev.preventDefault();
  const m = lb.model, f = $("file").files[0];
  if (!m || !f) return;
  const form = new FormData();
  form.append("file", f, f.name);
  const scoring = m.endpoints.includes("score"), enhancing = m.endpoints.includes("enhance");
  if (m.task === "avdigits") form.append("route", $("route").value);
  const rate = $("upload-rate").value.trim();
  if (rate !== "" && !enhancing && m.task !== "avdigits") form.append("sample_rate", rate);
  if (enhancing) {
    form.append("task", $("enhance-task").value);
    const mask = $("mask").files[0];
    if (mask) form.append("mask", mask, mask.name);
  }
  $("upload-status").textContent = "working…";
  message("");
  // the last file's result goes: after a failed upload it read as this file's
  $("result").hidden = true;
  $("enhance-result").hidden = true;
  try {
    const url = `/api/models/${encodeURIComponent(m.name)}/` +
      (scoring ? "score?spectrogram=true" : enhancing ? "enhance" : "predict");
    const r = await api(url, { method: "POST", body: form });
    if (lb.model !== m) {  // another model was picked meanwhile: its header would stand over this answer
      $("upload-status").textContent = `${m.name}'s answer for ${f.name} left unshown: another model is selected`;
      return;
    }
    lb.result = r;
    $("result").hidden = false;
    $("enhance-result").hidden = true;
    (scoring ? showScore : enhancing ? showEnhanced : showPrediction)(r);
    showWarnings(r);
    $("upload-status").textContent = "";
  } catch (e) {
    $("upload-status").textContent = "";
    message(e.message);
  }
}

// ------------------------------------------------------------------ generation
async function generateSamples(ev) {
  ev.preventDefault();
  const m = lb.model;
  if (!m) return;
  const body = { n: Number($("sample-n").value), seed: Number($("sample-seed").value) };
  if (m.task === "diffusion") {
    if ($("sample-class").value) body.label = $("sample-class").value;
    // an emptied field is the run's own setting, not 0 (guidance 0 sampled unconditionally without a word)
    const guidance = $("sample-guidance").value.trim(), steps = $("sample-steps").value.trim();
    if (guidance !== "") body.guidance = Number(guidance);
    if (steps !== "") body.steps = Number(steps);
    body.scheduler = $("sample-scheduler").value;
  }
  $("sample-status").textContent = "sampling…";
  message("");
  try {
    const r = await api(`/api/models/${encodeURIComponent(m.name)}/sample`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    lb.samples = r;
    const box = $("sample-result");
    box.innerHTML = "";
    r.images_png.forEach((png, i) => {
      const fig = figure(png, r.class_names ? r.class_names[i] : `#${i + 1}`);
      if (r.wavs) {
        const a = document.createElement("audio");
        a.controls = true;
        a.src = "data:audio/wav;base64," + r.wavs[i];
        fig.appendChild(a);
      }
      box.appendChild(fig);
    });
    $("sample-status").textContent = m.task === "diffusion"
      ? `${r.n} samples · ${r.scheduler} ${r.steps} steps · guidance ${r.guidance} · seed ${r.seed} · ${r.seconds.toFixed(1)} s`
      : `${r.n} pairs from the prior · seed ${r.seed}`;
  } catch (e) {
    $("sample-status").textContent = "";
    message(e.message);
  }
}

// ------------------------------------------------------------------ live microphone
let live = null;

function liveUpdate() {
  const ws = lb.live.windows;
  const bad = ws.filter((w) => w.is_anomaly).length;
  $("live-count").textContent = ws.length;
  $("live-anomalies").textContent = bad;
  $("live-anomalies").className = bad ? "nonzero" : "";
  if (ws.length) $("live-last").textContent = ws[ws.length - 1].score.toPrecision(4);
  LBCharts.timeline($("live-chart"), ws, lb.model.threshold, { span: 60 });
}

async function startLive() {
  const m = lb.model;
  if (!m || live) return;
  lb.live = { windows: [], messages: [], summary: null };
  message("");
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/worklet.js");
    const source = ctx.createMediaStreamSource(media);
    const node = new AudioWorkletNode(ctx, "latentbridge-capture");
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(ctx.destination);
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/api/models/${encodeURIComponent(m.name)}/stream`);
    ws.binaryType = "arraybuffer";
    live = { media, ctx, node, ws };
    ws.onopen = () => ws.send(JSON.stringify({ sample_rate: ctx.sampleRate, format: "f32", live: true }));
    node.port.onmessage = (e) => { if (ws.readyState === WebSocket.OPEN) ws.send(e.data); };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      lb.live.messages.push(msg.type);
      if (msg.type === "ready") {
        $("live-status").textContent = `listening at ${msg.sample_rate} Hz (model ${msg.model_sample_rate} Hz)`;
        live.warnings = (msg.warnings || []).slice();  // what the live input lacks that the model's files had
        showList($("live-warnings"), live.warnings);
      } else if (msg.type === "warning") {  // what the scoring notices: a muted input, clipping
        live.warnings.push(msg.detail);
        showList($("live-warnings"), live.warnings);
      } else if (msg.type === "window") {
        lb.live.windows.push(msg);
        $("live-dropped").textContent = msg.dropped_blocks;
        liveUpdate();
      } else if (msg.type === "error") {
        message(msg.detail);
      } else if (msg.type === "end") {
        lb.live.summary = msg;
      }
    };
    ws.onclose = () => { $("live-status").textContent = "stopped"; stopLive(); };
    // a browser reads no reason from a refused handshake: name every one it may be
    ws.onerror = () => message("the live stream was refused or failed: the server may be down, need an API key " +
      "(open the page as /?api_key=KEY), or hold as many live streams as it takes (latentbridge serve --max-streams)");
    $("live-start").disabled = true;
    $("live-stop").disabled = false;
    $("live-status").textContent = "connecting…";
  } catch (e) {
    message(`microphone: ${e.message}`);
    stopLive();
  }
}

function stopLive() {
  if (!live) return;
  const { media, ctx, ws } = live;
  live = null;
  media.getTracks().forEach((t) => t.stop());
  ctx.close();
  if (ws.readyState === WebSocket.OPEN) ws.close();
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("model").addEventListener("change", (e) => { stopLive(); selectModel(e.target.value); });
$("upload-form").addEventListener("submit", upload);
$("sample-form").addEventListener("submit", generateSamples);
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);
loadModels();
