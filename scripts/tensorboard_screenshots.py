"""TensorBoard as a user sees it: serve a log directory, open each dashboard in headless
Chromium, wait until it shows what it should, and save a screenshot of it.

    python scripts/tensorboard_screenshots.py <log dir, e.g. a sweep directory> <output dir>

writes <output dir>/tensorboard_{scalars,images,text,hparams}.png. It needs Debian's `chromium`
and `chromium-driver` (`make test-browser` installs them) and selenium (the `dev` extra).
tests/training/test_tensorboard_browser.py drives the same functions.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The text of every element, shadow roots included (TensorBoard's dashboards are web
# components), in page order; style and script text left out.
_PAGE_TEXT = """
function walk(node, out) {
  if (node.shadowRoot) walk(node.shadowRoot, out);
  for (const child of node.childNodes) {
    if (child.nodeType === 3) { const t = child.textContent.trim(); if (t) out.push(t); }
    else if (child.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(child.tagName)) walk(child, out);
  }
  return out;
}
return walk(document.body, []).join('\\n');
"""
# <img> elements anywhere in the page that have loaded a picture: (width, height) of each
_LOADED_IMAGES = """
function walk(node, out) {
  if (node.shadowRoot) walk(node.shadowRoot, out);
  for (const child of node.children || []) {
    if (child.tagName === 'IMG' && child.complete && child.naturalWidth > 0)
      out.push([child.naturalWidth, child.naturalHeight]);
    walk(child, out);
  }
  return out;
}
return walk(document.body, []);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoard:
    """A running `tensorboard --logdir`, listening on 127.0.0.1 only."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> object:
        """A data endpoint's JSON, e.g. get("data/plugin/scalars/tags")."""
        with urllib.request.urlopen(f"{self.url}/{path}", timeout=30) as response:
            return json.load(response)

    def post(self, path: str, request: dict) -> object:
        data = json.dumps(request).encode()
        req = urllib.request.Request(f"{self.url}/{path}", data, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.load(response)


@contextmanager
def serve(logdir: Path, runs: int, timeout: float = 120) -> Iterator[TensorBoard]:
    """TensorBoard on `logdir`, once it has loaded `runs` runs; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}"]
    command += ["--host=127.0.0.1", f"--port={port}", "--reload_interval=0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    board = TensorBoard(f"http://127.0.0.1:{port}")
    try:
        wait(lambda: _loaded_runs(board) >= runs, timeout, f"TensorBoard to load {runs} runs")
        yield board
    finally:
        process.terminate()
        process.wait(timeout=30)


def _loaded_runs(board: TensorBoard) -> int:
    try:
        return len(board.get("data/plugin/scalars/tags"))
    except OSError:  # not listening yet
        return 0


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@contextmanager
def chromium(width: int = 1800, height: int = 1000) -> Iterator[object]:
    """Headless Debian Chromium driven through its chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise FileNotFoundError("chromium and chromedriver are needed: make test-browser")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    browser = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield browser
    finally:
        browser.quit()


def page_text(browser) -> str:
    return browser.execute_script(_PAGE_TEXT)


def loaded_images(browser) -> list[tuple[int, int]]:
    return [tuple(size) for size in browser.execute_script(_LOADED_IMAGES)]


def open_dashboard(
    browser, board: TensorBoard, dashboard: str, expect: Iterable[str], timeout: float = 90
) -> str:
    """Open `dashboard` (scalars, images, text, hparams) and wait until the page shows every
    string of `expect`; its text."""
    browser.get(f"{board.url}/#{dashboard}")
    expect = list(expect)
    text = ""

    def shown() -> bool:
        nonlocal text
        text = page_text(browser)
        return all(s in text for s in expect)

    try:
        wait(shown, timeout, f"the {dashboard} dashboard to show {expect}")
    except TimeoutError as err:
        missing = [s for s in expect if s not in text]
        raise TimeoutError(f"{err}; missing {missing}; the page reads:\n{text[:3000]}") from None
    time.sleep(2)  # charts and pictures finish drawing after their titles appear
    return page_text(browser)


# what each dashboard must show before its screenshot is taken
def expectations(variants: Iterable[str]) -> dict[str, list[str]]:
    variants = list(variants)
    return {
        "scalars": ["train", "validation", "train/loss"],
        "images": ["attention/0"],
        "text": ["examples/0", "source:", "reference:", "translation:"],
        "hparams": ["Variant", *variants],
    }


def main(logdir: str, out_dir: str) -> None:
    runs = Path(logdir).rglob("metrics.json")
    variants = sorted(json.loads(run.read_text())["variant"] for run in runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"serving {logdir} ({len(variants)} runs) and opening each dashboard in Chromium")
    with serve(Path(logdir), runs=len(variants)) as board, chromium() as browser:
        for dashboard, expect in expectations(variants).items():
            open_dashboard(browser, board, dashboard, expect)
            browser.save_screenshot(str(out / f"tensorboard_{dashboard}.png"))
            print(f"wrote {out / f'tensorboard_{dashboard}.png'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/tensorboard_screenshots.py <log dir> <output dir>")
    main(sys.argv[1], sys.argv[2])
