"""The chapter notebooks shipped inside the package (`divekit notebooks --out DIR`)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from ..core.errors import DivekitError


def notebook_files() -> list[Path]:
    """The chapter notebooks of the installed package, in the book's order."""
    folder = resources.files("divekit") / "notebooks"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".ipynb"))


def copy_notebooks(out: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy every chapter notebook into the folder `out` (created if needed); returns the copies.

    A notebook already in `out` is kept (it may hold your edits and outputs) unless `overwrite`:
    then nothing is copied and DivekitError names the files, so no work is lost by accident."""
    sources = notebook_files()
    if not sources:
        raise DivekitError("this installation of divekit has no notebooks (divekit/notebooks is empty): "
                           "reinstall it, e.g. pip install --force-reinstall divekit")
    out = Path(out)
    existing = [out / p.name for p in sources if (out / p.name).exists()]
    if existing and not overwrite:
        shown = ", ".join(p.name for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise DivekitError(f"{out} already holds {len(existing)} of the notebooks ({shown}); choose another --out, "
                           "or pass --force to replace them")
    try:
        out.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copyfile(p, out / p.name)) for p in sources]
    except OSError as e:
        raise DivekitError(f"cannot write the notebooks to {out}: {e.strerror or e}; choose another --out") from None
