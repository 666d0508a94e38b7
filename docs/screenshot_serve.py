"""Take the README's screenshot of the serving page (docs/serve-page.png).

``latentbridge serve MODEL`` runs in a subprocess; headless Debian chromium (Playwright, the system
browser) opens the page, scores ``WAV`` as an upload, then listens to the same recording played by
its fake microphone until ``--windows`` windows are scored, and saves the page.

    python docs/screenshot_serve.py MODEL_DIR WAV [--out docs/serve-page.png] [--windows 16]

The tests' detector and recording (tests/conftest.py ``detector_model``: a model folder with
``fault.wav`` beside it) are what the committed picture shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("wav")
    ap.add_argument("--out", default=str(REPO / "docs" / "serve-page.png"))
    ap.add_argument("--windows", type=int, default=16)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "latentbridge", "serve", args.model, "--port", str(port)], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
                "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={Path(args.wav).resolve()}"])
            page = browser.new_page(viewport={"width": 1000, "height": 1000})
            page.goto(url + "/")
            page.wait_for_function("window.lb && window.lb.models.length > 0")
            page.set_input_files("#file", args.wav)
            page.click("#submit")
            page.wait_for_function("window.lb.result !== null", timeout=60000)
            page.click("#live-start")
            page.wait_for_function(f"window.lb.live.windows.length >= {args.windows}", timeout=120000)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
