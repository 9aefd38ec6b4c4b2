"""Fine-tuning (book 14.2): start from a pretrained model, replace its output layer, train.

The book copies every weight of an ImageNet ResNet-18 except the output layer, which it replaces
by a fresh one for the new classes, and trains that layer with a 10x larger learning rate than the
copied body. The PyTorch course's transfer learning freezes the body first and trains only the new
head, then unfreezes everything with a lower learning rate. Both are here:

    divekit train lenet-modern --data mnist --init-from runs/fashion --head-lr-mult 10
    divekit train resnet18 --data folder:photos --init-from pretrained.safetensors --freeze-body --out runs/head
    divekit train resnet18 --data folder:photos --init-from runs/head --lr 0.001

Where weights come from (`read_pretrained`): a divekit run folder (its best checkpoint) or
checkpoint file, a safetensors file of a state dict (`divekit.core.io.save_params`, or other tools),
or a `torch.save`d state dict (.pt / .pth / .bin) read with `torch.load(weights_only=True)`,
which refuses pickled code. Weights are matched by name and shape.

The output layer is the model's last nn.Linear (the last nn.Conv2d for all-convolutional
models such as NiN). It is kept from the checkpoint only when that is a divekit run on the same
classes (the second step above); otherwise it keeps its fresh initialization.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.checkpoint import Checkpoint
from ..core.errors import ConfigError, DivekitError
from ..core.io import read_safetensors
from ..core.rundir import checkpoint_path

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def read_pretrained(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The weights (a state dict) in `path` and, for a divekit checkpoint, its metadata (else None)."""
    path = Path(path)
    if path.is_dir():
        try:
            ckpt = Checkpoint(checkpoint_path(path, "best"))
        except DivekitError as e:
            raise DivekitError(f"--init-from: {e} (or give a weights file)") from None
        return ckpt.model_state(), ckpt.meta
    if not path.is_file():
        raise DivekitError(f"--init-from {path} does not exist: give a divekit run folder or a weights file "
                           f"(.safetensors, {', '.join(TORCH_SUFFIXES)})")
    if path.suffix in TORCH_SUFFIXES:
        state = _torch_load_weights(path)
        meta = None
    else:
        tensors, meta = read_safetensors(path, "divekit")
        if isinstance(meta, dict) and "model" in meta and any(k.startswith("model.") for k in tensors):
            state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}  # a divekit checkpoint
        else:
            state, meta = tensors, None
    # weights saved from a DistributedDataParallel / DataParallel wrapper carry a "module." prefix
    return {k.removeprefix("module."): v for k, v in state.items()}, meta


def _torch_load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a torch.save file, loaded with weights_only=True (no code runs)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise DivekitError(f"{path} is not a plain weights file: torch.load(weights_only=True) refused it "
                           f"({str(e).splitlines()[0]}). divekit does not run pickled code; save the state dict "
                           "alone (torch.save(model.state_dict(), path)) or as safetensors") from None
    except Exception as e:  # the restricted unpickler raises struct, EOF, runtime ... errors on other files
        raise DivekitError(f"{path} is not a readable torch weights file: torch.load(weights_only=True) failed "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    for key in ("state_dict", "model_state_dict", "model"):  # common training-checkpoint wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DivekitError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    return obj


def output_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the model's output layer: its last nn.Linear, else its last nn.Conv2d."""
    modules = list(model.named_modules())
    for kind in (nn.Linear, nn.Conv2d):
        found = [(name, m) for name, m in modules if isinstance(m, kind)]
        if found:
            return found[-1]
    raise DivekitError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to use as its output layer")


def _first_conv(model: nn.Module) -> str | None:
    return next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def _adapt_channels(w: torch.Tensor, c_new: int, key: str) -> torch.Tensor:
    """First-layer conv weights (O, C_old, k, k) for C_new input channels: a gray input repeated into
    RGB (or RGB averaged into gray) then gives the same response as the pretrained layer."""
    c_old = w.shape[1]
    if c_old == 1:
        return w.repeat(1, c_new, 1, 1) / c_new  # gray weights -> RGB: each channel sees gray / c_new
    if c_new == 1:
        return w.sum(dim=1, keepdim=True)  # RGB weights -> gray: R = G = B = gray
    raise DivekitError(f"cannot adapt {key} from {c_old} to {c_new} input channels (only 1 <-> C is supported): "
                       "use images with the pretrained model's channels (--data-arg channels=...)")


def transfer_weights(model: nn.Module, state: dict[str, torch.Tensor], keep_head: bool = False) -> dict[str, list[str]]:
    """Copy every weight of `state` whose name and shape match into `model`, except the output
    layer unless `keep_head`. The first conv is adapted between 1 and C input channels.

    Returns {"copied": keys, "adapted": keys, "head": keys left at their init, "skipped": keys
    with no matching weight}; raises DivekitError when no body weight matches at all.
    """
    own = model.state_dict()
    head_name, head = output_layer(model)
    head_keys = [f"{head_name}.{k}" if head_name else k for k in head.state_dict()]
    first_conv = _first_conv(model)
    new: dict[str, torch.Tensor] = {}
    report: dict[str, list[str]] = {"copied": [], "adapted": [], "head": [], "skipped": []}
    for key, mine in own.items():
        if key in head_keys and not keep_head:
            report["head"].append(key)
            continue
        src = state.get(key)
        if src is not None and src.shape == mine.shape:
            new[key] = src
            report["copied"].append(key)
        elif (src is not None and key == f"{first_conv}.weight" and src.dim() == 4 and src.shape[0] == mine.shape[0]
              and src.shape[2:] == mine.shape[2:]):
            new[key] = _adapt_channels(src, mine.shape[1], key)
            report["adapted"].append(key)
        else:
            report["skipped"].append(key)
    body = [k for k in own if k not in head_keys]
    if not any(k in new for k in body):
        raise DivekitError(
            f"no weight of the pretrained file matches {type(model).__name__}: the model has e.g. {body[:3]}, the file "
            f"{list(state)[:3]}. Fine-tune the same model that was pretrained (same --model and --model-arg)"
        )
    with torch.no_grad():
        for key, value in new.items():
            own[key].copy_(value.to(own[key].dtype))  # state_dict tensors share memory with the model
    if report["skipped"]:
        warnings.warn(f"fine-tuning: {len(report['skipped'])} weights of the model had no match of the same name and "
                      f"shape in the pretrained file and keep their fresh initialization: {report['skipped'][:6]}",
                      stacklevel=2)
    return report


def finetune_param_groups(model: nn.Module, lr: float, head_lr_mult: float = 10.0,
                          freeze_body: bool = False) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the body at `lr`, the output layer at `lr * head_lr_mult`
    (book 14.2). With `freeze_body` the body stops taking gradients and the head alone trains, at `lr`."""
    _, head = output_layer(model)
    head_params = list(head.parameters())
    head_ids = {id(p) for p in head_params}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    if freeze_body:
        for p in body:
            p.requires_grad_(False)
        return [{"params": head_params, "lr": lr}]
    return [{"params": body, "lr": lr}, {"params": head_params, "lr": lr * head_lr_mult}]


def prepare_finetune(model: nn.Module, data, cfg, *, load_weights: bool = True) -> list[dict[str, Any]]:
    """Set up a fine-tuning run for `fit`: copy the pretrained weights of cfg.init_from into `model`
    (unless resuming, `load_weights=False`), freeze the body if asked, and return the optimizer's
    parameter groups with the body and head learning rates (the trainer builds the optimizer)."""
    if load_weights:
        state, meta = read_pretrained(cfg.init_from)
        # the head carries over only from a divekit run on the very same classes (freeze, then unfreeze)
        keep_head = bool(meta and data.classes and meta.get("classes") == list(data.classes))
        transfer_weights(model, state, keep_head=keep_head)
    groups = finetune_param_groups(model, cfg.lr, cfg.head_lr_mult, cfg.freeze_body)
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise ConfigError("nothing left to train: the output layer has no parameters")
    return groups
