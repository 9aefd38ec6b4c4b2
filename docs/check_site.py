"""Check the built site as a reader sees it: `python docs/check_site.py [--shots DIR]`.

Opens three pages of build/site in headless Chromium (Debian's `chromium` package), saves a
screenshot of each, and asserts on the rendered DOM: the chapter page shows its live-curve figure
(an inline PNG in the notebook's outputs), the CLI reference lists `divekit train` with its
options, and the API page documents `train` and `fit`. Exits 1 naming what is missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "build" / "site"

# page (relative to the site), screenshot name, strings the rendered page must contain
PAGES = [
    ("chapters/03_softmax_regression/index.html", "site_chapter.png", ["data:image/png;base64", "test accuracy"]),
    ("cli/index.html", "site_cli.png", ["divekit train", "--batch-size", "--resume"]),
    ("api/index.html", "site_api.png", ["divekit.train.api.train", "divekit.train.api.fit", "TrainConfig"]),
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: apt-get install chromium")


def browse(url: str, *flags: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="divekit-chromium-")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=Path, default=REPO / "build" / "screenshots", help="folder for the screenshots")
    args = ap.parse_args(argv)
    args.shots.mkdir(parents=True, exist_ok=True)
    problems = []
    for page, shot, needles in PAGES:
        path = SITE / page
        if not path.is_file():
            problems.append(f"{page}: not built (run python docs/build_site.py first)")
            continue
        url = path.as_uri()
        dom = browse(url, "--dump-dom").stdout
        missing = [n for n in needles if n not in dom]
        if missing:
            problems.append(f"{page}: the rendered page lacks {missing}")
        browse(url, f"--screenshot={args.shots / shot}", "--window-size=1280,1600")
        if not (args.shots / shot).is_file():
            problems.append(f"{page}: no screenshot was written")
        print(f"{page}: {'ok' if not missing else 'MISSING ' + ', '.join(missing)} -> {args.shots / shot}")
    for p in problems:
        print(f"check_site: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
