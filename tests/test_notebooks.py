"""The chapter notebooks (divekit/notebooks) run top to bottom in a real Jupyter kernel.

Each notebook is executed with nbclient and ipykernel, as a learner's Jupyter would run it, in a
fresh folder, with the real datasets of ../shared/data (or $DIVEKIT_TEST_DATA). Its metadata
`divekit` says what it needs and what it must print:

    "divekit": {"datasets": ["fashion-mnist"],                      # skip (with the reason) if absent
                "expect": [{"pattern": "test accuracy ([0-9.]+)", "min": 0.8},
                           {"pattern": "corr2d: (.+)", "equals": "[[19.0, 25.0], [37.0, 43.0]]"}],
                "live_curves": true}                                 # dk.train redrew its curves in a cell

Set DIVEKIT_NOTEBOOK_OUT to keep the executed notebooks (the documentation site renders them) and
their execution times (timings.json).
"""

import json
import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat, nbclient and ipykernel (.[test])")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbclient and ipykernel (.[test])")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "divekit" / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # one cell; a whole notebook is meant to take under 2 minutes on a 2-core CPU

pytestmark = pytest.mark.notebooks


def _text_outputs(nb) -> str:
    """Everything the notebook printed or displayed as text, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out and "text/plain" in out["data"]:
                parts.append(out["data"]["text/plain"])
    return "\n".join(parts)


class CountingClient(nbclient.NotebookClient):
    """A NotebookClient that counts the kernel's figure updates: PlotCurves shows the curves with a
    display id after the first epoch and replaces them (update_display_data) after every other."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.figure_updates = 0

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "update_display_data" and "image/png" in msg["content"].get("data", {}):
            self.figure_updates += 1
        return super().process_message(msg, cell, cell_index)


def check_expectations(text: str, expectations: list[dict]) -> list[str]:
    """The expectations that `text` fails, as messages (empty: all hold)."""
    failures = []
    for e in expectations:
        match = re.search(e["pattern"], text)
        if match is None:
            failures.append(f"nothing printed matches {e['pattern']!r}")
            continue
        value = match.group(1)
        if "equals" in e and value.strip() != e["equals"]:
            failures.append(f"{e['pattern']!r}: printed {value!r}, expected {e['equals']!r}")
        if "min" in e and not float(value) >= e["min"]:
            failures.append(f"{e['pattern']!r}: printed {value}, expected at least {e['min']}")
        if "max" in e and not float(value) <= e["max"]:
            failures.append(f"{e['pattern']!r}: printed {value}, expected at most {e['max']}")
    return failures


def test_the_expectation_check_can_fail():
    text = "test accuracy 0.75\ncorr2d: [[19.0, 25.0]]"
    assert check_expectations(text, [{"pattern": r"test accuracy ([0-9.]+)", "min": 0.7}]) == []
    assert check_expectations(text, [{"pattern": r"test accuracy ([0-9.]+)", "min": 0.8}])
    assert check_expectations(text, [{"pattern": r"corr2d: (.+)", "equals": "[[19.0, 26.0]]"}])
    assert check_expectations(text, [{"pattern": r"never printed (\d)"}])


def test_there_are_notebooks_and_they_are_stored_without_outputs():
    assert len(NOTEBOOKS) >= 10, f"expected the chapter notebooks in {REPO / 'divekit' / 'notebooks'}"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing " \
                          "(jupyter nbconvert --clear-output --inplace, or the notebook's Clear All Outputs)"
        assert nb.metadata.get("divekit", {}).get("expect"), f"{path.name}: metadata.divekit.expect is empty"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
            f"{path.name}: the first cell is the chapter's title in markdown"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_prints_its_figures(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("divekit", {})
    data = Path(os.environ.get("DIVEKIT_TEST_DATA") or REPO.parent / "shared" / "data")
    if meta.get("datasets") and not data.is_dir():
        pytest.skip(f"{path.name} needs {', '.join(meta['datasets'])}: no data directory at {data} "
                    "(set DIVEKIT_TEST_DATA to a copy of the d2l data cache)")
    monkeypatch.setenv("DIVEKIT_DATA", str(data))
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    start = time.perf_counter()
    client = CountingClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        out = os.environ.get("DIVEKIT_NOTEBOOK_OUT")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(out) / path.name)
            timings = Path(out) / "timings.json"
            table = json.loads(timings.read_text()) if timings.is_file() else {}
            table[path.stem] = round(seconds, 1)
            timings.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    failures = check_expectations(_text_outputs(nb), meta.get("expect", []))
    assert not failures, f"{path.name}: " + "; ".join(failures)
    if meta.get("live_curves"):
        assert client.figure_updates >= 1, f"{path.name}: dk.train did not redraw its curves live in a cell"
