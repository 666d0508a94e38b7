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
  if (!r.ok) throw new Error(`${r.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`);
  return body;
}

function selectModel(name) {
  const m = lb.models.find((x) => x.name === name);
  lb.model = m;
  const inp = m.input || {};
  const parts = [m.task];
  if (m.threshold !== null && m.threshold !== undefined) parts.push(`threshold ${m.threshold.toPrecision(4)}`);
  if (inp.window_s) parts.push(`${inp.window_s} s windows, hop ${inp.hop_s} s, ${inp.sample_rate} Hz`);
  $("model-info").textContent = parts.join(" · ");
  const scoring = m.endpoints.includes("score");
  $("submit").textContent = scoring ? "Score" : "Predict";
  $("route-label").hidden = m.task !== "avdigits";
  $("file").accept = m.task === "multimodal" ? ".csv" : m.task === "avdigits" ? "audio/*,.png" : "audio/*";
  $("live-panel").hidden = !m.endpoints.includes("stream");
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

async function upload(ev) {
  ev.preventDefault();
  const m = lb.model, f = $("file").files[0];
  if (!m || !f) return;
  const form = new FormData();
  form.append("file", f, f.name);
  const scoring = m.endpoints.includes("score");
  if (m.task === "avdigits") form.append("route", $("route").value);
  $("upload-status").textContent = "working…";
  message("");
  try {
    const url = `/api/models/${encodeURIComponent(m.name)}/` + (scoring ? "score?spectrogram=true" : "predict");
    const r = await api(url, { method: "POST", body: form });
    lb.result = r;
    $("result").hidden = false;
    (scoring ? showScore : showPrediction)(r);
    $("upload-status").textContent = "";
  } catch (e) {
    $("upload-status").textContent = "";
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
    ws.onopen = () => ws.send(JSON.stringify({ sample_rate: ctx.sampleRate, format: "f32" }));
    node.port.onmessage = (e) => { if (ws.readyState === WebSocket.OPEN) ws.send(e.data); };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      lb.live.messages.push(msg.type);
      if (msg.type === "ready") {
        $("live-status").textContent = `listening at ${msg.sample_rate} Hz (model ${msg.model_sample_rate} Hz)`;
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
    ws.onerror = () => message("the live stream failed (is the server running, and does it need an API key?)");
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
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);
loadModels();
