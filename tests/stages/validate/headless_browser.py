"""Load an HTML file in Debian's headless chromium and report what a reader would see.

A copy of the page gets a small probe script that, after load, records each <img>'s
natural size and any JavaScript error into a DOM element; ``--dump-dom`` returns it.
Chromium's own console output (``--enable-logging=stderr``) catches what the page could
not log itself, such as resources that failed to load.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
PROBE = """<script>
window.__probeErrors = [];
window.addEventListener('error', e => window.__probeErrors.push(String(e.message || e)));
window.addEventListener('load', () => {
  const images = Array.from(document.images).map(img => ({alt: img.alt,
    complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
  const out = document.createElement('pre');
  out.id = '__probe';
  out.textContent = JSON.stringify({images: images, errors: window.__probeErrors});
  document.body.appendChild(out);
});
</script>"""


@dataclass
class PageCheck:
    images: list[dict]
    script_errors: list[str]
    console_lines: list[str]

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not i["complete"] or i["width"] == 0]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium not installed: run 'make setup' (scripts/apt-packages.txt)")
    return path


def _run(args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def check_page(html: Path) -> PageCheck:
    """Load ``html`` (a copy with the probe) and return images, JS and console errors."""
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / html.name
        probed.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
        result = _run(["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                      Path(tmp) / "profile")
    match = re.search(r'<pre id="__probe">(.*?)</pre>', result.stdout, flags=re.S)
    if match is None:
        raise AssertionError(f"the page never finished loading in chromium:\n{result.stderr}")
    probe = json.loads(match.group(1).replace("&amp;", "&").replace("&lt;", "<")
                       .replace("&gt;", ">").replace("&quot;", '"'))
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    return PageCheck(images=probe["images"], script_errors=probe["errors"],
                     console_lines=console)


def screenshot(html: Path, target: Path, width: int = 1200, height: int = 5000) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run([f"--window-size={width},{height}", f"--screenshot={target}",
              "--virtual-time-budget=5000", html.resolve().as_uri()], Path(tmp) / "profile")
    if not target.is_file():
        raise AssertionError(f"chromium wrote no screenshot {target}")
    return target
