"""The web page in a real browser: Debian's chromium, headless, driven by Playwright (the system
browser, never a downloaded one), its fake capture device playing a recording with a fault in it.

The live page must show window scores and flag the faulty part; the upload page must show a
result. Screenshots are kept in ``$LATENTBRIDGE_TEST_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, ServerProcess

CHROMIUM = os.environ.get("LATENTBRIDGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
try:
    import uvicorn  # noqa: F401
    from playwright import sync_api
    MISSING = None if CHROMIUM else "no chromium on PATH (apt-get install chromium)"
except ImportError as e:
    MISSING = (f"{e.name} is not installed (pip install -e '.[test]'; never `playwright install`: the system "
               "chromium is used)")
if MISSING and os.environ.get("CI"):  # .ci/run installs all of it: a skip there would hide a broken set-up
    raise RuntimeError(f"the browser tests cannot run in CI: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
ARTIFACTS = Path(os.environ.get("LATENTBRIDGE_TEST_ARTIFACTS", REPO / "test-artifacts"))
FAULT_PERIOD_S = 8.0  # fault.wav: 8 s, looped by the fake device; noise from 5 to 7 s


@pytest.fixture(scope="module")
def server(detector_model):
    srv = ServerProcess([detector_model])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(detector_model):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={detector_model.parent / 'fault.wav'}",
            "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _open(browser, url: str, n_models: int, height: int = 1000):
    """A new page at ``url`` once the page has listed ``n_models`` models; with the list its script
    errors and console errors (a resource that failed to load: /favicon.ico's 404 on every load) are collected in."""
    page = browser.new_page(viewport={"width": 1000, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.goto(url)
    page.wait_for_function(f"window.lb && window.lb.models.length === {n_models}", timeout=30000)
    return page, errors


def _smallest_arc(phases: np.ndarray, period: float) -> float:
    """Length of the shortest arc of a circle of circumference ``period`` holding every phase."""
    p = np.sort(np.mod(phases, period))
    gaps = np.diff(np.concatenate([p, [p[0] + period]]))
    return float(period - gaps.max())


def test_live_page_scores_the_microphone_and_flags_the_fault(server, browser):
    page, errors = _open(browser, server.url + "/", 1, height=1100)
    page.click("#live-start")
    page.wait_for_function("window.lb.live.windows.length >= 16", timeout=90000)
    windows = page.evaluate("window.lb.live.windows")
    _shot(page, "serve_live.png")
    assert not errors, errors
    assert page.inner_text("#live-count") == str(len(windows)) or int(page.inner_text("#live-count")) >= 16
    starts = np.array([w["start_s"] for w in windows])
    np.testing.assert_allclose(np.diff(starts), 1.0, atol=1e-6)  # one window per hop, none dropped
    assert all(w["dropped_blocks"] == 0 for w in windows)
    flagged = np.array([w["is_anomaly"] for w in windows])
    assert int(page.inner_text("#live-anomalies")) == int(flagged.sum())
    # The first window holds the capture's start (the audio graph starting up, silence before the
    # device's first samples): judged on the windows after it.
    scores = [round(w["score"], 3) for w in windows]
    starts, flagged = starts[1:], flagged[1:]
    # the looped recording is 8 s with 2 s of fault (5-7 s): the 2-s windows that touch it start
    # within a 3-s span of every loop (3-6 s, shifted by where the capture began)
    assert 0.2 <= flagged.mean() <= 0.65, scores
    assert _smallest_arc(starts[flagged], FAULT_PERIOD_S) <= 3.5, (starts[flagged], scores)
    # ... in every loop: 15 windows (15 s) see the fault of at least two loops
    runs = 1 + int(np.sum(np.diff(starts[flagged]) > 1.5))
    assert runs >= 2, (starts[flagged], scores)
    page.click("#live-stop")
    page.close()


def test_upload_page_shows_a_result(server, browser, detector_model):
    page, _ = _open(browser, server.url + "/", 1)
    page.set_input_files("#file", str(detector_model.parent / "fault.wav"))
    page.click("#submit")
    page.wait_for_function("window.lb.result !== null", timeout=60000)
    _shot(page, "serve_upload.png")
    result = page.evaluate("window.lb.result")
    assert page.inner_text("#decision") == result["decision"]
    assert result["n_windows"] == 7 and result["spectrogram"]["db"]
    flagged = [w["start_s"] for w in result["windows"] if w["is_anomaly"]]
    assert flagged and all(3.5 < s < 7.0 for s in flagged)
    # the timeline was drawn: the canvas holds red (anomalous) and blue (score) pixels
    colours = page.evaluate("""() => {
        const d = document.getElementById('timeline').getContext('2d').getImageData(0, 0, 900, 220).data;
        let red = 0, blue = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i] > 180 && d[i + 1] < 90 && d[i + 2] < 90) red++;
            if (d[i] < 60 && d[i + 1] < 130 && d[i + 2] > 150) blue++;
        }
        return [red, blue];
    }""")
    assert colours[0] > 10 and colours[1] > 50, colours
    assert page.is_hidden("#result-warnings")
    # what the server says of a file is shown beside the decision (a clipping recording read as just "anomalous")
    import soundfile as sf

    x, sr = sf.read(detector_model.parent / "fault.wav")
    hot = detector_model.parent / "hot.wav"
    sf.write(hot, np.clip(4 * x / np.abs(x).max(), -1, 1), sr, subtype="PCM_16")
    page.set_input_files("#file", str(hot))
    page.click("#submit")
    page.wait_for_function("window.lb.result.file === 'hot.wav'", timeout=60000)
    assert page.is_visible("#result-warnings") and "1 of 1 recordings clip" in page.inner_text("#result-warnings")
    # a file that cannot be read: its error, and no verdict of the file before (it read as this file's)
    bad = detector_model.parent / "text.wav"
    bad.write_text("not audio")
    page.set_input_files("#file", str(bad))
    page.click("#submit")
    page.wait_for_function("document.getElementById('upload-status').textContent === ''", timeout=60000)
    assert page.is_hidden("#result") and "422: text.wav:" in page.inner_text("body")
    page.close()


@pytest.fixture(scope="module")
def generative_server(tmp_path_factory):
    from conftest import tiny_generative_folders

    root = tmp_path_factory.mktemp("generative")
    folders = tiny_generative_folders(root)
    np.save(root / "slide.npy", np.random.default_rng(0).random((20, 24, 3)).astype(np.float32))
    srv = ServerProcess(list(folders.values()))
    srv.root = root
    yield srv
    srv.stop()


def test_generate_and_enhance_pages(generative_server, browser):
    page, errors = _open(browser, generative_server.url + "/?model=ddpm", 2)
    assert page.is_hidden("#upload-panel") and page.is_hidden("#live-panel") and page.is_visible("#sample-panel")
    assert page.input_value("#sample-steps") == "5"  # the run's own sampling settings
    page.fill("#sample-n", "4")
    page.select_option("#sample-class", "seven")
    page.click("#sample-submit")
    page.wait_for_function("window.lb.samples !== undefined", timeout=60000)
    assert page.locator("#sample-result figure").count() == 4
    assert page.locator("#sample-result figcaption").all_inner_texts() == ["seven"] * 4
    _shot(page, "serve_sample.png")
    # emptied fields are the run's settings (guidance 0 sampled unconditionally, steps 0 showed pydantic's JSON)
    page.fill("#sample-guidance", "")
    page.fill("#sample-steps", "")
    page.evaluate("window.lb.samples = undefined")
    page.click("#sample-submit")
    page.wait_for_function("window.lb.samples !== undefined", timeout=60000)
    used = page.evaluate("window.lb.samples")
    assert used["steps"] == 5 and used["guidance"] != 0, used
    page.select_option("#model", "cvae")
    assert page.is_visible("#upload-panel") and page.is_hidden("#sample-panel") and page.is_visible("#task-label")
    page.set_input_files("#file", str(generative_server.root / "slide.npy"))
    page.select_option("#enhance-task", "upscale")
    page.click("#submit")
    page.wait_for_function("window.lb.result !== null", timeout=60000)
    result = page.evaluate("window.lb.result")
    assert result["task"] == "upscale" and result["shape"] == [40, 48, 3]
    assert page.locator("#enhance-result figure").count() == 9  # 3 channels x input, enhanced, sigma
    _shot(page, "serve_enhance.png")
    assert not errors, errors
    page.close()


def test_api_docs_page_works_without_internet(server, browser):
    """/docs lists the endpoints with every request beyond the server refused (the script was on a CDN)."""
    page = browser.new_page()
    outside = []

    def route(r):
        if r.request.url.startswith(server.url):
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.endswith("/score") for p in paths) and "/healthz" in paths, paths
    _shot(page, "serve_docs.png")
    assert not outside, outside
    page.close()
