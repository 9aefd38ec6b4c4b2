"""The run folder's layout: every file name a run writes, in one place.

    runs/lenet-fashion-mnist-20261203-101500/
        config.json              the resolved TrainConfig (repeat the run with --config)
        metrics.json             one dict of metrics per epoch (also metrics.csv)
        curves.png               loss and accuracy (or perplexity ...) per epoch
        checkpoint.safetensors   the last epoch: weights, optimizer, RNG and trainer state (--resume)
        best.safetensors         the best epoch by the monitored metric (weights only)
        samples/epoch_001.png    a generative model's samples after each epoch (GANs on images)
        samples.png              a GAN's generated points beside the real ones at a few epochs (2-D data)
"""

from __future__ import annotations

from pathlib import Path

from .errors import DivekitError

CONFIG = "config.json"
METRICS = "metrics.json"
METRICS_CSV = "metrics.csv"
CURVES = "curves.png"
LAST = "checkpoint.safetensors"
BEST = "best.safetensors"
SAMPLES = "samples"
SAMPLE_POINTS = "samples.png"


def sample_grid_path(run_dir: str | Path, epoch: int) -> Path:
    """The grid of a generative run's samples after `epoch` (1-based)."""
    return Path(run_dir) / SAMPLES / f"epoch_{epoch:03d}.png"


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint file of a run folder: `which` is "best" (falling back to the last one, for runs
    that monitored nothing) or "last". Raises DivekitError naming the folder if there is none."""
    if which not in ("best", "last"):
        raise DivekitError(f"which checkpoint: 'best' or 'last', got {which!r}")
    run_dir = Path(run_dir)
    candidates = [run_dir / BEST, run_dir / LAST] if which == "best" else [run_dir / LAST]
    for path in candidates:
        if path.is_file():
            return path
    if not run_dir.is_dir():
        raise DivekitError(f"no checkpoint: {run_dir} does not exist; give the folder of a divekit run "
                           "(runs/MODEL-DATA-TIME)")
    raise DivekitError(f"no checkpoint in {run_dir} (no {' or '.join(p.name for p in candidates)}): is it a divekit "
                       "run folder that finished an epoch?")
