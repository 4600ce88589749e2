"""The Streamlit app in a real browser: Debian's chromium, driven by Playwright, on 127.0.0.1.

The server runs ``apps/streamlit_app.py`` on the embedded default model with a fresh workspace.
The test uploads a photo, asks for its edges, finds the tool step and the result image on the
page, checks that image is an edge map of the upload, then restarts the server and finds the same
conversation again from the URL.

Run as a script to take the README screenshot of such a session:
``.venv/bin/python tests/test_app_browser.py --screenshot docs/screenshot.png``
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# Without the networking flags chromium keeps trying to reach Google from a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_S = 90
# As in test_app.py: the edge detector only and one tool step, so the test is about the app and a
# turn is one model call (which tool a 135M model picks among many is the evaluation's subject).
SETTINGS = {"EFE_LOAD": "Image2Canny_cpu", "EFE_MAX_TOOL_STEPS": "1"}
# A first turn loads the model and its tools; a CPU with 2 cores shared with other work is slow.
TURN_S = 240

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="chromium is not installed: run scripts/install_browser.sh (as root) to run this test",
    ),
    pytest.mark.timeout(900),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(workspace: Path, port: int, log: Path, **settings: str):
    """``streamlit run apps/streamlit_app.py`` on 127.0.0.1:port until the block ends (then killed).

    ``settings``: start-up environment of the page, e.g. ``EFE_LOAD="Image2Canny_cpu"``.
    """
    env = {**os.environ, "EFE_WORKSPACE": str(workspace), "PYTHONUNBUFFERED": "1", **settings}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "apps" / "streamlit_app.py"),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--server.fileWatcherType", "none",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer within {SERVER_START_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def photo(path: Path) -> Path:
    """The astronaut photo scikit-image ships (a person, a flag, sharp edges), as a JPEG upload."""
    from skimage import data

    Image.fromarray(data.astronaut()).save(path, quality=92)
    return path


def wait_idle(page, timeout_s: float) -> None:
    """Until Streamlit's script run finishes (the running indicator goes away)."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_s * 1000
    )


def upload_and_ask(page, url: str, image: Path, question: str) -> str:
    """Upload ``image``, ask ``question``; returns the page URL (it carries the conversation id)."""
    page.goto(url)
    page.get_by_test_id("stFileUploaderDropzoneInput").wait_for(state="attached", timeout=60_000)
    wait_idle(page, TURN_S)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(image))
    # The upload shows up in the chat once it is stored and described.
    page.get_by_test_id("stChatMessage").filter(has_text="Uploaded as image/").wait_for(timeout=TURN_S * 1000)
    wait_idle(page, TURN_S)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    page.get_by_test_id("stChatMessage").filter(has_text=question).wait_for(timeout=60_000)
    wait_idle(page, TURN_S)
    return page.url


def edge_step(page):
    """The tool step of the edge detector, with the result image inside it."""
    step = page.get_by_test_id("stChatMessage").get_by_test_id("stExpander").filter(has_text="Edge Detection On Image")
    step.first.wait_for(timeout=TURN_S * 1000)
    return step.first


def result_path(step) -> str:
    """The workspace path of the result image, read from the image's caption on the page."""
    step.get_by_test_id("stImageCaption").filter(has_text="image/").first.wait_for(timeout=60_000)
    captions = [c for c in step.get_by_test_id("stImageCaption").all_inner_texts() if c.startswith("image/")]
    assert captions, "the edge step shows no result image"
    return captions[-1].strip()


def check_edge_map(workspace: Path, upload_rel: str, result_rel: str) -> None:
    edges = np.asarray(Image.open(workspace / result_rel).convert("L"), dtype=np.float32) / 255.0
    src = np.asarray(Image.open(workspace / upload_rel).convert("L"), dtype=np.float32)
    assert edges.shape == src.shape, "the edge map does not have the upload's size"
    # An edge map is mostly dark with thin bright lines where the photo's gradient is strong.
    assert 0.01 < (edges > 0.5).mean() < 0.4
    gy, gx = np.gradient(src)
    grad = np.hypot(gx, gy)
    assert grad[edges > 0.5].mean() > 2 * grad[edges <= 0.5].mean()


def image_loaded(page, img) -> None:
    """Until the browser has fetched and decoded the image (not only laid out its element)."""
    img.wait_for(timeout=60_000)
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=60_000)


@contextlib.contextmanager
def evidence_on_failure(page, tmp_path: Path, log: Path):
    """A failing browser test leaves a screenshot and says what the server printed."""
    try:
        yield
    except Exception as exc:
        shot = tmp_path / "failure.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot))
        tail = log.read_text(errors="replace")[-2500:] if log.exists() else "(no server log)"
        raise AssertionError(f"{exc}\n--- screenshot: {shot}\n--- server log (tail):\n{tail}") from exc


def test_upload_ask_for_edges_and_find_the_result_after_a_restart(tmp_path):
    pytest.importorskip("playwright", reason="the playwright package is not installed: run scripts/install_browser.sh")
    workspace = tmp_path / "workspace"
    image = photo(tmp_path / "astronaut.jpg")
    log = tmp_path / "streamlit.log"
    with chromium_page() as page, evidence_on_failure(page, tmp_path, log):
        with streamlit_server(workspace, _free_port(), log, **SETTINGS) as url:
            page_url = upload_and_ask(page, url, image, "Detect the edges of this image")
            assert "thread=" in page_url
            step = edge_step(page)
            result = result_path(step)
            uploads = [p for p in page.get_by_test_id("stImageCaption").all_inner_texts() if p.startswith("Uploaded as ")]
            upload_rel = uploads[0].removeprefix("Uploaded as ").strip()
            # The step shows what the tool was given (the upload) and one output.
            assert step.get_by_test_id("stCode").first.inner_text().strip() == upload_rel
            assert step.get_by_text("Output", exact=True).count() == 1
            check_edge_map(workspace, upload_rel, result)
            # The result image really loads in the browser (not only its caption).
            image_loaded(page, step.locator("img").last)

        # A new server process on the same workspace: the URL brings the conversation back.
        with streamlit_server(workspace, _free_port(), log, **SETTINGS) as url2:
            page.goto(url2 + "/?" + page_url.split("?", 1)[1])
            wait_idle(page, TURN_S)
            step = edge_step(page)
            assert result_path(step) == result
            image_loaded(page, step.locator("img").last)
            assert page.get_by_test_id("stChatMessage").filter(has_text="Detect the edges of this image").count() == 1


def take_screenshot(out: Path) -> None:
    """A real session for the README: upload, ask for the edges, screenshot the page."""
    work = Path(tempfile.mkdtemp(prefix="efe-shot-"))
    try:
        image = photo(work / "astronaut.jpg")
        # Every tool and the default step limit, as a user gets them, so the turn ends with the
        # model's own answer (the tests cap a turn at one tool step to stay fast).
        server = streamlit_server(work / "workspace", _free_port(), work / "log")
        with chromium_page(1400, 2000) as page, server as url:
            upload_and_ask(page, url, image, "Detect the edges of this image")
            edge_step(page)
            page.get_by_text("Thinking", exact=False).first.wait_for(state="detached", timeout=TURN_S * 1000)
            wait_idle(page, TURN_S)
            page.wait_for_timeout(1000)
            out.parent.mkdir(parents=True, exist_ok=True)
            # Streamlit scrolls inside its own container, so the viewport is made tall enough for
            # the whole exchange instead of asking for a full-page shot.
            page.screenshot(path=str(out))
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, required=True)
    take_screenshot(parser.parse_args().screenshot)
