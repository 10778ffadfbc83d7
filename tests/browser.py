"""Headless Chromium for the browser tests: load a page, count its images and the broken ones, read where
they were laid out, and take a screenshot at the same window size.

Chromium is Debian's ``chromium`` package (`make test` installs it with tests/install_chromium.sh);
:func:`require_chromium` skips a test, with the reason, when it is missing.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: the window of both the DOM dump and the screenshot (CSS px), so that their layouts are the same
WINDOW = (1280, 4000)

#: appended to a test-only copy of the page (the product page has no JavaScript)
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const el = document.createElement("div");
  el.id = "img-check";
  el.textContent = `images=${imgs.length} broken=${broken}`;
  document.body.appendChild(el);
  const layout = document.createElement("div");
  layout.id = "img-layout";
  layout.textContent = JSON.stringify({width: document.documentElement.clientWidth, images: imgs.map(i => {
    const r = i.getBoundingClientRect();
    return {src: i.getAttribute("src"), x: r.left + scrollX + i.clientLeft, y: r.top + scrollY + i.clientTop,
            w: i.clientWidth, h: i.clientHeight, natural_w: i.naturalWidth, natural_h: i.naturalHeight};
  })});
  document.body.appendChild(layout);
});
</script>"""


def require_chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium not on PATH: install it with tests/install_chromium.sh as root "
                    "(apt-get install chromium); `make test` does this")
    return exe


def chromium(*args: str, tmp: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run headless Chromium with ``args`` and a throw-away profile under ``tmp``."""
    return subprocess.run([require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=timeout, check=True)


def load_in_browser(index: Path, tmp: Path) -> tuple[int, int, str]:
    """(images, broken images, DOM after load) of ``index`` opened in headless Chromium."""
    check = index.with_name("browser_check.html")
    check.write_text(index.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    try:
        dom = chromium("--virtual-time-budget=5000", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--dump-dom",
                       check.as_uri(), tmp=tmp).stdout
    finally:
        check.unlink()
    m = re.search(r'id="img-check">images=(\d+) broken=(\d+)<', dom)
    assert m, dom[-2000:]
    return int(m.group(1)), int(m.group(2)), dom


def image_layout(dom: str) -> dict:
    """Where the browser laid out the images of a page loaded by :func:`load_in_browser`: ``{"width": the
    page's width, "images": [{src, x, y, w, h (the drawn picture without its border, CSS px from the page's
    top left), natural_w, natural_h}]}``."""
    m = re.search(r'id="img-layout">([^<]*)<', dom)
    assert m, dom[-2000:]
    return json.loads(html.unescape(m.group(1)))


def screenshot(index: Path, shot: Path, tmp: Path) -> Path:
    """A PNG of the page's top ``WINDOW`` (the window of :func:`load_in_browser`, so the same layout)."""
    chromium(f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars", index.as_uri(),
             tmp=tmp)
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 10000
    return shot
