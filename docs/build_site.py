"""Build the documentation site: `python docs/build_site.py [--notebooks DIR] [--serve]`.

Assembles build/docs-src from docs/site/*.md (home, API reference), docs/RESULTS.md,
docs/ARCHITECTURE.md and docs/img, a CLI reference generated from divekit's argparse parser, and
the chapter notebooks (executed copies from DIR, as tests/test_notebooks.py writes them with
DIVEKIT_NOTEBOOK_OUT; without DIR, the stored notebooks without outputs), then runs
`mkdocs build --strict` into build/site. Needs the docs extra: pip install -e ".[docs]".
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "build" / "docs-src"


def cli_reference() -> str:
    """Markdown for every verb of `divekit`, from the parser itself (so it cannot go stale)."""
    from divekit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["# Command line", "", "One command, `divekit VERB ...`. Every verb that produces results takes `--json` and",
             "then prints one JSON object with its final figures as the last line of stdout. A mistake in the",
             "input prints one line, `divekit: error: ...`, and exits with status 2.", "",
             "This page is generated from the parser (`docs/build_site.py`).", ""]
    helps = {a.dest: a.help for a in sub._choices_actions}
    for verb, p in sub.choices.items():
        text = io.StringIO()
        with redirect_stdout(text):
            p.print_help()
        lines += [f"## divekit {verb}", "", helps.get(verb) or "", "", "```text", text.getvalue().rstrip(), "```", ""]
    return "\n".join(lines)


def notebook_title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source.splitlines()[0] if nb.cells else path.stem
    return first.lstrip("# ").strip()


def assemble(executed: Path | None) -> list[dict[str, str]]:
    """Fill build/docs-src; returns the chapters' nav entries."""
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    shutil.copytree(REPO / "docs" / "site", SRC, dirs_exist_ok=True)
    for page in ("RESULTS.md", "ARCHITECTURE.md"):
        shutil.copy(REPO / "docs" / page, SRC / page)
    shutil.copytree(REPO / "docs" / "img", SRC / "img")
    (SRC / "cli.md").write_text(cli_reference() + "\n")
    chapters = SRC / "chapters"
    chapters.mkdir()
    timings = json.loads((executed / "timings.json").read_text()) if executed and (executed / "timings.json").is_file() else {}
    nav, rows = [], ["# Chapters", "", "One notebook per chapter of the book, in its order. Get them with",
                     "`divekit notebooks --out notebooks` and open them in Jupyter; each runs in about a minute or",
                     "less on a laptop CPU. The pages below show the outputs of the notebooks as CI ran them.", "",
                     "| notebook | chapter | seconds in CI |", "|---|---|---|"]
    for path in sorted((REPO / "divekit" / "notebooks").glob("*.ipynb")):
        source = executed / path.name if executed and (executed / path.name).is_file() else path
        shutil.copy(source, chapters / path.name)
        title = notebook_title(path)
        nav.append({title: f"chapters/{path.name}"})
        rows.append(f"| [{path.stem}]({path.name}) | {title} | {timings.get(path.stem, '')} |")
    (chapters / "index.md").write_text("\n".join(rows) + "\n")
    return [{"Overview": "chapters/index.md"}, *nav]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", type=Path, help="folder of executed notebooks (DIVEKIT_NOTEBOOK_OUT of the tests)")
    ap.add_argument("--serve", action="store_true", help="serve the site locally instead of building it")
    args = ap.parse_args(argv)
    chapters = assemble(args.notebooks)
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["nav"] = [{k: (chapters if k == "Chapters" else v)} for item in config["nav"] for k, v in item.items()]
    config["docs_dir"], config["site_dir"] = str(SRC), str(REPO / "build" / "site")
    generated = REPO / "build" / "mkdocs.generated.yml"
    generated.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "mkdocs", "serve" if args.serve else "build", "-f", str(generated)]
    if not args.serve:
        cmd.append("--strict")
    return subprocess.call(cmd, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
