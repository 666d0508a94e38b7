// Small canvas charts for the page (no library): a score timeline and a spectrogram.
"use strict";

const LBCharts = (() => {
  const PAD = { left: 52, right: 12, top: 12, bottom: 30 };

  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const step0 = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(+v.toPrecision(6));
    return ticks;
  }

  // yTicks: [[value, label], ...] in place of evenly spaced numbers (a mel axis)
  function axes(ctx, w, h, x0, x1, y0, y1, xLabel, grid = true, yTicks = null) {
    const X = (v) => PAD.left + ((v - x0) / (x1 - x0 || 1)) * (w - PAD.left - PAD.right);
    const Y = (v) => h - PAD.bottom - ((v - y0) / (y1 - y0 || 1)) * (h - PAD.top - PAD.bottom);
    ctx.strokeStyle = "#c9ced8";
    ctx.fillStyle = "#6b7385";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(PAD.left, PAD.top);
    ctx.lineTo(PAD.left, h - PAD.bottom);
    ctx.lineTo(w - PAD.right, h - PAD.bottom);
    ctx.stroke();
    ctx.textAlign = "right";
    for (const [t, label] of yTicks || niceTicks(y0, y1, 5).map((v) => [v, String(v)])) {
      ctx.fillText(label, PAD.left - 6, Y(t) + 4);
      if (!grid) continue;
      ctx.strokeStyle = "#eef0f4";
      ctx.beginPath();
      ctx.moveTo(PAD.left + 1, Y(t));
      ctx.lineTo(w - PAD.right, Y(t));
      ctx.stroke();
    }
    ctx.textAlign = "center";
    for (const t of niceTicks(x0, x1, 10)) ctx.fillText(String(t), X(t), h - PAD.bottom + 14);
    ctx.fillText(xLabel, (PAD.left + w - PAD.right) / 2, h - 3);
    return { X, Y };
  }

  // windows: [{start_s, end_s, score, is_anomaly}]; threshold: number; opts.span: seconds shown (live)
  function timeline(canvas, windows, threshold, opts = {}) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    let x1 = windows.length ? Math.max(...windows.map((d) => d.end_s)) : opts.span || 10;
    let x0 = opts.span ? Math.max(0, x1 - opts.span) : 0;
    if (opts.span && x1 - x0 < opts.span) x1 = x0 + opts.span;
    const shown = windows.filter((d) => d.end_s >= x0);
    const scores = shown.map((d) => d.score).concat([threshold]);
    let y0 = Math.min(0, ...scores), y1 = Math.max(...scores) * 1.1 || 1;
    const { X, Y } = axes(ctx, w, h, x0, x1, y0, y1, "time (s)");
    ctx.fillStyle = "rgba(229, 57, 53, 0.18)";
    for (const d of shown) {
      if (d.is_anomaly) ctx.fillRect(X(Math.max(x0, d.start_s)), PAD.top, X(d.end_s) - X(Math.max(x0, d.start_s)), h - PAD.top - PAD.bottom);
    }
    ctx.strokeStyle = "#e65100";
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(PAD.left, Y(threshold));
    ctx.lineTo(w - PAD.right, Y(threshold));
    ctx.stroke();
    ctx.setLineDash([]);
    const mid = (d) => (d.start_s + d.end_s) / 2;
    ctx.strokeStyle = "#1565c0";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    shown.forEach((d, i) => (i ? ctx.lineTo(X(mid(d)), Y(d.score)) : ctx.moveTo(X(mid(d)), Y(d.score))));
    ctx.stroke();
    for (const d of shown) {
      ctx.fillStyle = d.is_anomaly ? "#c62828" : "#1565c0";
      ctx.beginPath();
      ctx.arc(X(mid(d)), Y(d.score), d.is_anomaly ? 4 : 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // A perceptual colour ramp (dark blue → teal → yellow).
  const STOPS = [[13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104], [244, 136, 73], [254, 188, 43], [240, 249, 33]];
  function colour(t) {
    const x = Math.min(0.9999, Math.max(0, t)) * (STOPS.length - 1);
    const i = Math.floor(x), f = x - i;
    return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
  }

  // spec: {db: [[row per frequency, low first]], seconds_per_column, f_max_hz}
  function spectrogram(canvas, spec) {
    const ctx = canvas.getContext("2d");
    const rows = spec.db.length, cols = spec.db[0].length;
    let hi = -Infinity;
    for (const r of spec.db) for (const v of r) hi = Math.max(hi, v);
    const lo = hi - 80;
    const img = ctx.createImageData(cols, rows);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const [R, G, B] = colour((spec.db[r][c] - lo) / (hi - lo));
        const o = 4 * ((rows - 1 - r) * cols + c);
        img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
      }
    }
    const off = document.createElement("canvas");
    off.width = cols; off.height = rows;
    off.getContext("2d").putImageData(img, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const w = canvas.width, h = canvas.height;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, PAD.left, PAD.top, w - PAD.left - PAD.right, h - PAD.top - PAD.bottom);
    // times in the recording: a model that trims silence draws what it kept from where that starts
    const x0 = spec.start_s || 0, x1 = x0 + cols * spec.seconds_per_column, label = "time (s) · frequency (kHz)";
    if (spec.row_hz && spec.row_hz.length === rows) {  // each row at its own frequency: mel bands are not evenly spaced
      const ticks = [0, 1, 2, 3, 4].map((k) => Math.round((k * (rows - 1)) / 4))
        .map((r) => [r + 0.5, String(+(spec.row_hz[r] / 1000).toPrecision(2))]);
      axes(ctx, w, h, x0, x1, 0, rows, label, false, ticks);
    } else {
      axes(ctx, w, h, x0, x1, 0, spec.f_max_hz / 1000, label, false);
    }
  }

  return { timeline, spectrogram };
})();
