"""Samples from a trained GAN's generator (`divekit generate RUN_DIR --num N --out grid.png`)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.errors import ConfigError
from ..core.plot import save_image_grid
from ..core.rundir import SAMPLE_POINTS


def generate_samples(model: torch.nn.Module, num: int = 64, seed: int = 0, out: str | Path | None = None) -> dict:
    """`num` samples of a GAN run's generator from noise seeded by `seed`. Images are saved as one
    grid PNG at `out` (default samples.png); 2-D points as a CSV (x, y per line) when `out` is given.
    Returns where they went, their shape and their mean (per coordinate, or the mean pixel)."""
    if not callable(getattr(model, "sample", None)):
        raise ConfigError(f"{type(model).__name__} is not a generative model: `divekit generate --num` samples "
                          "from a GAN run (e.g. dcgan, gan-toy); for a language model pass --prefix")
    if num < 1:
        raise ConfigError(f"--num must be at least 1, got {num}")
    samples = model.sample(num, torch.Generator().manual_seed(seed)).float().cpu()
    result: dict = {"num": num, "seed": seed, "shape": list(samples.shape[1:])}
    if samples.dim() == 4:  # (N, C, H, W) images in [0, 1]
        path = save_image_grid(samples.numpy(), Path(out or SAMPLE_POINTS))
        result.update(image=str(path), mean_pixel=round(float(samples.mean()), 4))
    else:  # (N, d) points
        result["mean"] = [round(v, 4) for v in samples.mean(0).tolist()]
        if out is not None:
            path = Path(out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in samples.tolist()))
            result["csv"] = str(path)
    return result
