"""Headless Chromium for the tests that look at a page as a browser lays it out."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# The page under test in an iframe of the width asked (Chromium's headless window is never narrower
# than 500 px, a phone is 390): after it loads, every <details> opened, the frame's width, its
# document's width, each element that scrolls sideways and each element that reaches past the
# frame's right edge are written into the wrapper's DOM, which --dump-dom prints.
_WRAPPER = """<!doctype html><html><body style="margin:0">
<iframe id="page" src="{src}" style="width:{width}px;height:900px;border:0"></iframe>
<script>
document.getElementById('page').addEventListener('load', () => {{
  const win = document.getElementById('page').contentWindow, doc = win.document;
  doc.querySelectorAll('details').forEach(d => d.open = true);
  const all = [...doc.querySelectorAll('body *')];
  const name = e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '');
  const scrolling = all.filter(e => e.scrollWidth > e.clientWidth + 1
    && ['auto', 'scroll'].includes(win.getComputedStyle(e).overflowX)).map(name);
  const beyond = all.filter(e => e.getBoundingClientRect().right > win.innerWidth + 1).map(name);
  document.body.setAttribute('data-layout', JSON.stringify({{
    width: win.innerWidth, page: doc.documentElement.scrollWidth, scrolling, beyond: beyond.slice(0, 10),
    folded: doc.querySelectorAll('details').length}}));
}});
</script></body></html>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise AssertionError("no Chromium on this machine (make install installs the Debian package chromium)")


def browser() -> list[str]:
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def layout(page: Path, width: int) -> dict[str, Any]:
    """How Chromium lays ``page`` out in a viewport ``width`` pixels wide (see _WRAPPER)."""
    wrapper = page.with_name(f".layout-{width}-{page.name}")
    wrapper.write_text(_WRAPPER.format(src=page.name, width=width))
    try:
        dom = subprocess.run(
            [*browser(), "--allow-file-access-from-files", "--window-size=1400,1000", "--dump-dom", wrapper.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    finally:
        wrapper.unlink()
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, f"Chromium laid out nothing for {page}: {dom[-1000:]}"
    return json.loads(html.unescape(found.group(1)))
