"""Checkpoints as single safetensors files: weights, optimizer state, RNG state and JSON metadata.

safetensors holds only tensors and a string header, so loading a checkpoint never runs code
(unlike pickle). A checkpoint is written to a temporary file, flushed to disk and renamed over
the old one, so a crash mid-write leaves the previous checkpoint intact.

Tensor keys: `model.<state_dict key>`, `optim.<param index>.<state name>`, `rng.cpu`,
`rng.cuda.<i>`; the header's `divekit` entry holds the JSON metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .errors import DivekitError
from .io import atomic_save_file, read_safetensors

FORMAT_VERSION = 1


def _plain(t: torch.Tensor) -> torch.Tensor:
    # a private contiguous CPU copy: safetensors refuses shared storage (tied weights) and views
    return t.detach().to("cpu", copy=True).contiguous()


def checkpoint_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    meta: dict[str, Any] | None = None,
    *,
    save_rng: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (private CPU copies) and the metadata of a checkpoint, ready for `write_checkpoint`:
    a snapshot that later training steps do not change, so it can be written in the background."""
    tensors = {f"model.{k}": _plain(v) for k, v in model.state_dict().items()}
    header: dict[str, Any] = {"format": FORMAT_VERSION, "torch": torch.__version__, **(meta or {})}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, state in sd["state"].items():
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{pid}.{name}"] = _plain(value)
                else:
                    scalars.setdefault(str(pid), {})[name] = value
        header["optimizer"] = {"param_groups": sd["param_groups"], "scalars": scalars}
    if save_rng:
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
    return tensors, {"divekit": json.dumps(header)}


Payload = tuple[dict[str, torch.Tensor], dict[str, str]]  # tensors, safetensors metadata


def weights_only(payload: Payload) -> Payload:
    """A `checkpoint_payload` without its optimizer and RNG state (the same tensors, not copies): what
    `checkpoint_payload(model, None, meta, save_rng=False)` would give for the same model and meta."""
    tensors, header = payload
    meta = json.loads(header["divekit"])
    meta.pop("optimizer", None)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}, {"divekit": json.dumps(meta)}


def write_checkpoint(path: str | Path, payload: tuple[dict[str, torch.Tensor], dict[str, str]]) -> Path:
    """Write a `checkpoint_payload` to `path` atomically (a crash leaves the previous file intact)."""
    tensors, metadata = payload
    return atomic_save_file(tensors, Path(path), metadata)


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    meta: dict[str, Any] | None = None,
    *,
    save_rng: bool = True,
) -> Path:
    """Write model weights (+ optimizer and RNG state) and JSON-able `meta` atomically to `path`."""
    return write_checkpoint(path, checkpoint_payload(model, optimizer, meta, save_rng=save_rng))


class Checkpoint:
    """A loaded checkpoint: `tensors` by key and the JSON `meta`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DivekitError(f"no checkpoint at {self.path}: is this a divekit run folder that finished an epoch?")
        try:
            self.tensors, self.meta = read_safetensors(self.path, "divekit")
        except DivekitError as e:
            raise DivekitError(f"checkpoint {e} If the run folder has another checkpoint "
                               "(best.safetensors / checkpoint.safetensors), use that one.") from None
        if not isinstance(self.meta, dict) or self.meta.get("format") != FORMAT_VERSION:
            raise DivekitError(f"{self.path} is not a divekit checkpoint (format {FORMAT_VERSION} expected)")

    def _prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def model_state(self) -> dict[str, torch.Tensor]:
        return self._prefixed("model.")

    def load_model(self, model: torch.nn.Module) -> None:
        """Copy the weights into `model`; a mismatch names the differing keys."""
        state = self.model_state()
        own = model.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        wrong = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
        if missing or unexpected or wrong:
            raise DivekitError(
                f"checkpoint {self.path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                f"different shapes {sorted(wrong)[:5]}. Build the model with the run's config (see its config.json)."
            )
        model.load_state_dict(state)

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        info = self.meta.get("optimizer")
        if info is None:
            raise DivekitError(f"checkpoint {self.path} has no optimizer state to resume from")
        state: dict[int, dict[str, Any]] = {}
        for key, value in self._prefixed("optim.").items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        for pid, values in info["scalars"].items():
            state.setdefault(int(pid), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})

    def restore_rng(self) -> None:
        if "rng.cpu" in self.tensors:
            torch.set_rng_state(self.tensors["rng.cpu"])
        keys = sorted((k for k in self.tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        cuda = [self.tensors[k] for k in keys]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
