"""Serving under load: ``latentbridge serve`` on 127.0.0.1 against 50 concurrent HTTP clients, and
10 real-time WebSocket streams.

Set-up: synthetic machine recordings (16 kHz) and an anomaly model of the default preset
(``configs/anomaly_vae.yaml``, trained for ``--epochs``; or ``--model DIR``); clips of 2 s and 10 s
cut from held-out recordings (16-bit WAV).

1. **In-process reference** (measured at the start and at the end of the run; their mean is the
   reference): one thread calls what the server calls for each upload, one clip after another
   (``FeatureExtractor.read`` + ``windows_of`` + ``Detector.score_windows``) on the same mix of
   clips, for ``--inproc-seconds``: requests/s and scored windows/s. torch on one thread, as
   ``latentbridge serve`` runs on 2 cores.
2. **HTTP load**, once with the server's default micro-batching and once without
   (``--max-batch 1``), and once per ``--sweep`` value of ``--max-batch``: the server (``python -m latentbridge serve``) and the load client (its own
   process: asyncio + httpx, ``--clients`` tasks, each posting 2-s and 10-s clips alternately,
   back to back, for ``--seconds``) share the machine. Reported: requests/s, scored windows/s,
   p50/p95/p99 latency per clip length, the count of every status code, requests lost (sent
   without an answer: exceptions, time-outs), and served/in-process throughput.
3. **WebSocket streams**: ``--streams`` clients each stream a looped normal recording in real time
   (100-ms f32 frames at 16 kHz, paced by the clock) for ``--ws-minutes``, then end the stream.
   Reported: windows expected vs received (a missing one is a dropped window), the server's
   dropped-block counter, and the latency per window = time its message arrived − time the frame
   holding its last sample was sent (p50/p95/p99/max).

Goals printed with the figures: zero 5xx and zero lost requests; served throughput ≥ 50 % of
in-process; p99 < 250 ms for 2-s clips at 50 clients; no dropped window in the streams.

    python benchmarks/bench_serve.py [--seconds 60] [--clients 50] [--streams 10] [--ws-minutes 5]
                                     [--model DIR] [--epochs 3] [--inproc-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, table, write_results  # noqa: E402

PY_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def pct(xs, q) -> float | None:
    return float(np.percentile(xs, q)) if len(xs) else None


# ----------------------------------------------------------------------------- set-up


def prepare(work: Path, model: str | None, epochs: int) -> tuple[Path, dict[str, list[Path]]]:
    from latentbridge.cli import main
    from latentbridge.data.synth.machine import synth_machine
    from latentbridge.io import read_audio, write_wav

    synth_machine(work / "data", seed=0, duration_s=10.0, n_train=24, n_test_normal=8, n_test_anomalous=4)
    if model is None:
        model = work / "model"
        args = ["anomaly", "fit", str(work / "data" / "train" / "normal"), "--out", str(model), "--config",
                str(REPO / "configs" / "anomaly_vae.yaml"), "-o", f"train.max_epochs={epochs}",
                "-o", "train.progress_bar=false"]
        assert main(args) == 0
    clips: dict[str, list[Path]] = {"2s": [], "10s": []}
    (work / "clips").mkdir()
    for i, f in enumerate(sorted((work / "data" / "test").rglob("*.wav"))):
        wave, sr = read_audio(f)
        write_wav(work / "clips" / f"c{i}_10s.wav", wave[: 10 * sr], sr)
        write_wav(work / "clips" / f"c{i}_2s.wav", wave[sr: 3 * sr], sr)
        clips["10s"].append(work / "clips" / f"c{i}_10s.wav")
        clips["2s"].append(work / "clips" / f"c{i}_2s.wav")
    return Path(model), clips


def in_process(model: Path, clips: dict[str, list[Path]], seconds: float) -> dict:
    """What one upload costs without HTTP: read + cut + score, one clip after another."""
    import torch

    from latentbridge.tasks.anomaly import Detector

    torch.set_num_threads(1)
    det = Detector.load(model)
    ex = det.extractor(use_cache=False)
    order = [p for pair in zip(clips["2s"], clips["10s"]) for p in pair]
    for p in order[:4]:  # warm-up
        det.score_windows(ex.windows_of(ex.read(p), p)[0])
    n = windows = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        p = order[n % len(order)]
        w, _ = ex.windows_of(ex.read(p), p)
        det.score_windows(w)
        n += 1
        windows += len(w)
    dt = time.perf_counter() - t0
    return {"requests": n, "windows": windows, "seconds": dt, "requests_per_s": n / dt, "windows_per_s": windows / dt}


# ----------------------------------------------------------------------------- load client (own process)


async def http_load(url: str, name: str, clips: dict[str, list[str]], clients: int, seconds: float) -> dict:
    import httpx

    payloads = {k: [(Path(p).name, Path(p).read_bytes()) for p in v] for k, v in clips.items()}
    records = []  # (kind, status or None, latency_s, windows, t_start)
    lost = {"exceptions": 0, "kinds": {}}
    t_end = time.monotonic() + seconds

    async def client(i: int, c):
        k = i
        while time.monotonic() < t_end:
            kind = "2s" if k % 2 == 0 else "10s"
            fname, data = payloads[kind][k % len(payloads[kind])]
            k += 1
            t0 = time.perf_counter()
            try:
                r = await c.post(f"/api/models/{name}/score", files={"file": (fname, data, "audio/wav")})
                n = r.json().get("n_windows", 0) if r.status_code == 200 else 0
                records.append((kind, r.status_code, time.perf_counter() - t0, n, t0))
            except Exception as e:  # noqa: BLE001 - a lost request, counted by kind
                lost["exceptions"] += 1
                lost["kinds"][type(e).__name__] = lost["kinds"].get(type(e).__name__, 0) + 1
                records.append((kind, None, time.perf_counter() - t0, 0, t0))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(i, c) for i in range(clients)])
        wall = time.perf_counter() - t0
    return {"records": records, "lost": lost, "wall_s": wall}


async def ws_load(port: int, name: str, wav: str, streams: int, minutes: float) -> dict:
    import websockets

    from latentbridge.io import read_audio

    wave, sr = read_audio(wav)
    frame = sr // 10
    total = int(minutes * 60 * sr) // frame * frame
    looped = np.resize(wave, total).astype("<f4")

    async def one(i: int) -> dict:
        sent_at = []  # monotonic time each frame was sent
        got = []  # (end_s, arrival time)
        last = {}
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/models/{name}/stream", max_size=2**22) as ws:
            await ws.send(json.dumps({"sample_rate": sr, "format": "f32"}))
            ready = json.loads(await ws.recv())

            async def reader():
                async for raw in ws:
                    m = json.loads(raw)
                    if m["type"] == "window":
                        got.append((m["end_s"], time.monotonic(), m["dropped_blocks"]))
                    else:
                        last.update(m)
                        return

            rtask = asyncio.create_task(reader())
            t0 = time.monotonic() + 0.05 * i  # streams start a little apart
            for j in range(0, total, frame):
                delay = t0 + (j + frame) / sr - time.monotonic()  # a frame leaves when it is complete
                if delay > 0:
                    await asyncio.sleep(delay)
                await ws.send(looped[j:j + frame].tobytes())
                sent_at.append(time.monotonic())
            await ws.send(json.dumps({"end": True}))
            await asyncio.wait_for(rtask, timeout=60)
        window, hop = int(ready["window_s"] * sr), int(ready["hop_s"] * sr)
        full = (total - window) // hop + 1  # and a padded last one when over half a window is left
        expected = full + int(total - full * hop > window / 2)
        lat = [t - sent_at[int(np.ceil(round(e * sr) / frame)) - 1] for e, t, _ in got
               if int(np.ceil(round(e * sr) / frame)) - 1 < len(sent_at)]
        return {"expected": expected, "received_live": len(got), "latencies_s": lat, "end": last,
                "dropped_blocks": max([d for *_, d in got], default=0)}

    return {"streams": await asyncio.gather(*[one(i) for i in range(streams)])}


def client_main(args) -> None:
    spec = json.loads(Path(args.client).read_text())
    if spec["kind"] == "http":
        out = asyncio.run(http_load(spec["url"], spec["name"], spec["clips"], spec["clients"], spec["seconds"]))
    else:
        out = asyncio.run(ws_load(spec["port"], spec["name"], spec["wav"], spec["streams"], spec["minutes"]))
    Path(spec["out"]).write_text(json.dumps(out))


def run_client(spec: dict, work: Path, timeout: float) -> dict:
    path = work / f"client_{spec['kind']}_{time.time_ns()}.json"
    spec = {**spec, "out": str(path.with_suffix(".out.json"))}
    path.write_text(json.dumps(spec))
    subprocess.run([sys.executable, __file__, "--client", str(path)], check=True, env=PY_ENV, timeout=timeout)
    return json.loads(Path(spec["out"]).read_text())


# ----------------------------------------------------------------------------- server


class Server:
    def __init__(self, model: Path, port: int, *args: str, log: Path):
        import httpx

        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "latentbridge", "serve", str(model), "--port", str(port),
                                      "--log-level", "warning", *args], env=PY_ENV, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stats(self, name: str) -> dict:
        import httpx

        return httpx.get(self.url + "/healthz", timeout=10).json()["batching"][name]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def summarise_http(res: dict, reference_rps: float, reference_wps: float, batch: dict) -> dict:
    rec = res["records"]
    ok = [r for r in rec if r[1] == 200]
    statuses: dict[str, int] = {}
    for r in rec:
        statuses[str(r[1]) if r[1] is not None else "lost"] = statuses.get(str(r[1]) if r[1] is not None else "lost", 0) + 1
    wall = res["wall_s"]
    out = {"requests": len(rec), "statuses": statuses, "lost": res["lost"]["exceptions"],
           "lost_kinds": res["lost"]["kinds"], "requests_per_s": len(ok) / wall,
           "windows_per_s": sum(r[3] for r in ok) / wall, "wall_s": wall, "batching": batch}
    for kind in ("2s", "10s"):
        lat = [r[2] * 1000 for r in ok if r[0] == kind]
        out[f"{kind}_n"] = len(lat)
        for q in (50, 95, 99):
            out[f"{kind}_p{q}_ms"] = pct(lat, q)
    out["served_vs_inprocess_requests"] = out["requests_per_s"] / reference_rps
    out["served_vs_inprocess_windows"] = out["windows_per_s"] / reference_wps
    out["n_5xx"] = sum(v for k, v in statuses.items() if k.startswith("5"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--ws-minutes", type=float, default=5.0)
    ap.add_argument("--inproc-seconds", type=float, default=20.0)
    ap.add_argument("--model")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--port", type=int, default=8731)
    ap.add_argument("--sweep", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="extra HTTP runs at these --max-batch values (e.g. 32,16,8), beside the default and unbatched")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        return client_main(args)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    os.environ.setdefault("LATENTBRIDGE_CACHE", str(work / "cache"))
    model, clips = prepare(work, args.model, args.epochs)
    name = model.name
    clip_paths = {k: [str(p) for p in v] for k, v in clips.items()}
    print(f"model {model}; {len(clips['2s'])} 2-s and {len(clips['10s'])} 10-s clips; load {os.getloadavg()}")

    ref_before = in_process(model, clips, args.inproc_seconds)
    print(f"in-process (start): {ref_before['requests_per_s']:.1f} requests/s, {ref_before['windows_per_s']:.1f} windows/s")
    modes = {}
    runs = [("batched", []), ("unbatched", ["--max-batch", "1"])]
    runs += [(f"max_batch_{n}", ["--max-batch", str(n)]) for n in args.sweep]
    for label, flags in runs:
        srv = Server(model, args.port, *flags, log=work / f"server_{label}.log")
        try:
            res = run_client({"kind": "http", "url": srv.url, "name": name, "clips": clip_paths,
                              "clients": args.clients, "seconds": args.seconds}, work, timeout=args.seconds + 600)
            modes[label] = (res, srv.stats(name))
        finally:
            srv.stop()
        print(f"{label}: {len(res['records'])} requests in {res['wall_s']:.1f} s")
    ref_after = in_process(model, clips, args.inproc_seconds)
    ref_rps = (ref_before["requests_per_s"] + ref_after["requests_per_s"]) / 2
    ref_wps = (ref_before["windows_per_s"] + ref_after["windows_per_s"]) / 2
    print(f"in-process (end): {ref_after['requests_per_s']:.1f} requests/s; reference = mean {ref_rps:.1f} requests/s, "
          f"{ref_wps:.1f} windows/s")
    http = {label: summarise_http(res, ref_rps, ref_wps, batch) for label, (res, batch) in modes.items()}
    rows = [{"mode": k, **v} for k, v in http.items()]
    print(table(rows, ["mode", "requests", "requests_per_s", "windows_per_s", "2s_p50_ms", "2s_p95_ms", "2s_p99_ms",
                       "10s_p50_ms", "10s_p99_ms", "n_5xx", "lost", "served_vs_inprocess_windows"]))
    for k, v in http.items():
        print(f"{k}: statuses {v['statuses']}; mean batch {v['batching']['mean_batch_windows']:.1f} windows")

    ws = None
    if args.streams and args.ws_minutes > 0:
        srv = Server(model, args.port + 1, log=work / "server_ws.log")
        try:
            wav = str(next((work / "data" / "test" / "normal").glob("*.wav")))
            ws = run_client({"kind": "ws", "port": srv.port, "name": name, "wav": wav, "streams": args.streams,
                             "minutes": args.ws_minutes}, work, timeout=args.ws_minutes * 60 + 600)
        finally:
            srv.stop()
        lat = [x * 1000 for s in ws["streams"] for x in s["latencies_s"]]
        for s in ws["streams"]:
            s["received"] = s["received_live"]
            s["dropped_windows"] = s["expected"] - s["received"]
        ws["summary"] = {"streams": args.streams, "minutes": args.ws_minutes,
                         "windows_expected": sum(s["expected"] for s in ws["streams"]),
                         "windows_received": sum(s["received"] for s in ws["streams"]),
                         "dropped_windows": sum(s["dropped_windows"] for s in ws["streams"]),
                         "dropped_blocks": sum(s["dropped_blocks"] for s in ws["streams"]),
                         **{f"latency_p{q}_ms": pct(lat, q) for q in (50, 95, 99)},
                         "latency_max_ms": max(lat) if lat else None}
        print("streams:", json.dumps(ws["summary"]))

    b = http["batched"]
    goals = {
        "zero_5xx": all(v["n_5xx"] == 0 for v in http.values()),
        "zero_lost": all(v["lost"] == 0 for v in http.values()),
        "served_at_least_half_of_in_process": b["served_vs_inprocess_windows"] >= 0.5,
        "p99_2s_under_250ms": (b["2s_p99_ms"] or 1e9) < 250,
        "streams_no_dropped_window": ws is None or ws["summary"]["dropped_windows"] == 0,
    }
    print("goals:", json.dumps(goals))
    for v in http.values():
        v.pop("lost_kinds", None) if not v["lost_kinds"] else None
    write_results("bench_serve", {
        "settings": vars(args) | {"model": str(model)}, "in_process": {"start": ref_before, "end": ref_after,
                                                                         "requests_per_s": ref_rps,
                                                                         "windows_per_s": ref_wps},
        "http": http, "websocket": ws and {"summary": ws["summary"],
                                           "streams": [{k: v for k, v in s.items() if k != "latencies_s"}
                                                       for s in ws["streams"]]},
        "goals": goals, "loadavg_at_end": os.getloadavg()})


if __name__ == "__main__":
    main()
