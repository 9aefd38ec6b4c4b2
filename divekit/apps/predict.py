"""Predictions for new inputs: image files through a trained classifier, text from a language model,
and a Kaggle submission for a folder of images (`id,label`, book 14.13)."""

from __future__ import annotations

import contextlib
import csv
from collections import Counter
from pathlib import Path

import torch

from ..core.errors import DivekitError
from ..core.io import atomic_write
from ..data.images import read_image
from ..data.text import Vocab
from ..data.translation import preprocess_nmt
from ..models.decoding import translate
from ..models.rnn import generate


def load_image(path: str | Path, shape: tuple[int, int, int] | None = None, invert: bool = False) -> torch.Tensor:
    """Read an image file as a float (C, H, W) tensor in [0, 1], converted to `shape`'s channels
    and size (default: RGB at the file's own size)."""
    c, h, w = shape if shape is not None else (3, None, None)
    x = read_image(path, "L" if c == 1 else "RGB", (h, w) if h else None).float() / 255
    return 1 - x if invert else x


def _image_shape(meta: dict) -> tuple[int, int, int]:
    """The (C, H, W) a run's image classifier takes; a DivekitError for any other run."""
    shape = meta["context"].get("in_shape")
    if meta["task"] != "classification" or not shape or len(shape) != 3:
        raise DivekitError(f"`divekit predict` takes image files for image classifiers; this run is a {meta['task']} "
                           f"model on {meta['data']!r}")
    return tuple(shape)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    """`model` in eval mode (dropout off, batch norm on its running statistics) inside the block;
    afterwards every submodule is back in the mode it was in."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _class_name(classes: list[str] | None, i: int) -> str:
    """Class `i`'s name, or its index as text when the run's data has no class names."""
    return classes[i] if classes else str(i)


@torch.no_grad()
def predict_images(model: torch.nn.Module, meta: dict, paths, top: int = 3, invert: bool = False) -> list[dict]:
    """Top-`top` classes with probabilities for each image file, for a run's classifier, in eval mode
    (the model's own mode is restored after); a class is named by its index when the run has no names."""
    shape = _image_shape(meta)
    classes = meta.get("classes")
    x = torch.stack([load_image(p, shape, invert) for p in paths])
    with _eval_mode(model):
        probs = torch.softmax(model(x.to(next(model.parameters()).device)).float(), dim=1).cpu()
    p, idx = probs.topk(min(top, probs.shape[1]), dim=1)
    return [
        {"input": str(path), "top": [{"class": _class_name(classes, i), "prob": round(float(q), 4)}
                                     for q, i in zip(pr, ix.tolist())]}
        for path, pr, ix in zip(paths, p, idx)
    ]


def image_files(folder: str | Path) -> list[Path]:
    """The files of `folder` (not its sub-folders), by numeric name when every name is a number
    (Kaggle's test/1.png, test/2.png, ..., test/10.png), else by name."""
    folder = Path(folder)
    files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
    if not files:
        raise DivekitError(f"{folder} holds no image files to predict")
    numeric = all(f.stem.isdigit() for f in files)
    return sorted(files, key=lambda f: (int(f.stem), f.name) if numeric else (0, f.name))


@torch.no_grad()
def predict_labels(model: torch.nn.Module, meta: dict, paths, batch_size: int = 256,
                   invert: bool = False) -> list[str]:
    """The most likely class of each image file, decoded and classified `batch_size` at a time, in
    eval mode (the model's own mode is restored after): its name, or its index when the run's data
    has no class names."""
    shape, classes = _image_shape(meta), meta.get("classes")
    device = next(model.parameters()).device
    labels = []
    with _eval_mode(model):
        for start in range(0, len(paths), batch_size):
            x = torch.stack([load_image(p, shape, invert) for p in paths[start:start + batch_size]])  # (B, C, H, W)
            labels += [_class_name(classes, i) for i in model(x.to(device)).argmax(dim=1).tolist()]
    return labels


def write_submission(model: torch.nn.Module, meta: dict, inputs, out: str | Path, invert: bool = False) -> dict:
    """Classify image files and folders of them (a folder's files in numeric order) and write
    `out` as a Kaggle submission: the header `id,label`, then one row per image with its file name
    without the extension and the predicted class name (book 14.13's submission.csv)."""
    paths = [f for p in inputs for f in (image_files(p) if Path(p).is_dir() else [Path(p)])]
    ids = [p.stem for p in paths]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise DivekitError(f"the inputs hold several images with the id {repeated[0]!r}: a submission needs one row "
                           "per id; predict one folder at a time")
    labels = predict_labels(model, meta, paths, invert=invert)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "label"])
            writer.writerows(zip(ids, labels))

    atomic_write(Path(out), write)
    return {"out": str(out), "rows": len(ids), "columns": ["id", "label"]}


def generate_text(model: torch.nn.Module, meta: dict, prefix: str, num_preds: int, temperature: float = 0.0,
                  seed: int = 0) -> str:
    """`prefix` continued by `num_preds` tokens from a run's language model (greedy at temperature 0)."""
    if meta["task"] != "language-model":
        raise DivekitError(f"`divekit generate` needs a language model run; this run is a {meta['task']} model "
                           f"on {meta['data']!r}")
    if num_preds < 0 or temperature < 0:
        raise DivekitError("--chars and --temperature must be >= 0")
    vocab = Vocab.from_dict(meta["context"]["vocab"])
    level = meta["context"].get("level", "char")
    if not any(t != t.lower() for t in vocab.idx_to_token):  # a lowercased corpus (the book's Time Machine)
        prefix = prefix.lower()
    generator = torch.Generator().manual_seed(seed)
    return generate(model, vocab, prefix, num_preds, level=level, temperature=temperature, generator=generator)


def translate_sentences(model: torch.nn.Module, meta: dict, sentences: list[str], beam_size: int = 1,
                        alpha: float = 0.75, heatmap_dir: str | Path | None = None) -> list[dict]:
    """Translate raw sentences with a run's seq2seq model: each is preprocessed like the training
    data (the book's fra-eng preprocessing) and decoded greedily or with beam search. With
    `heatmap_dir`, each sentence's attention weights are saved there as a PNG (for the Transformer:
    the encoder-decoder attention of every layer and head)."""
    from ..core.plot import attention_heatmap  # deferred: core.plot loads matplotlib, only when a plot is drawn

    if meta["task"] != "seq2seq":
        raise DivekitError(f"`divekit translate` needs a translation run; this run is a {meta['task']} model "
                           f"on {meta['data']!r}")
    if beam_size < 1:
        raise DivekitError(f"--beam must be at least 1, got {beam_size}")
    context = meta["context"]
    src_vocab, tgt_vocab = Vocab.from_dict(context["src_vocab"]), Vocab.from_dict(context["tgt_vocab"])
    rows = []
    for i, sentence in enumerate(sentences):
        src = preprocess_nmt(sentence).split()
        tokens, weights = translate(model, src, src_vocab, tgt_vocab, context["num_steps"], beam_size, alpha)
        row = {"source": " ".join(src), "translation": " ".join(tokens)}
        if heatmap_dir is not None and weights is not None:
            grid = _heatmap_grid(weights)
            path = Path(heatmap_dir) / f"attention-{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            titles = [f"head {h + 1}" for h in range(grid.shape[1])] if grid.shape[1] > 1 else None  # columns
            row["heatmap"] = str(attention_heatmap(grid, path, xlabel="source position", ylabel="output position",
                                                   titles=titles))
        rows.append(row)
    return rows


def _heatmap_grid(weights) -> torch.Tensor:
    """Attention weights of one sentence as a (rows, cols, T_dec, T_src) grid: one map for an RNN
    decoder, blocks x heads of encoder-decoder attention for the Transformer."""
    if isinstance(weights, torch.Tensor):
        return weights[None, None]  # (1, 1, T_dec, T_src)
    if isinstance(weights[0][0], torch.Tensor):  # one pass: [self-attention, cross-attention] per block
        cross = weights[1]
    else:  # greedy decoding: one [self-attention, cross-attention] entry per step, each (heads, 1, T_src)
        cross = [torch.cat([step[1][b] for step in weights], dim=1) for b in range(len(weights[0][1]))]
    return torch.stack(cross)  # (blocks, heads, T_dec, T_src)
