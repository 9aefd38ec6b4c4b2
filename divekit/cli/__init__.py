"""The `divekit` command: divekit VERB ... (train, eval, predict, generate, list, data ...).

Every verb that produces results takes --json and then prints one JSON object with its final
figures as the last line of stdout. Errors in the input print a message naming the problem and
the fix (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from ..core.errors import DivekitError


def _model_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    # JSON (0.5, true, [16, 32]), a comma-separated list (widths=16,32,64), else the string itself
    for candidate in (value, f"[{value}]") if "," in value else (value,):
        with contextlib.suppress(ValueError):
            return key, json.loads(candidate)
    return key, value


# Verbs defined beside their feature (detection, style transfer, BERT ...): VERB -> module.
# Each module defines `add_parser(sub)` (adds its subparser to `sub`) and `run(args) -> int`.
VERB_MODULES: dict[str, str] = {
    "bench": "divekit.apps.bench",
    "detect": "divekit.apps.detect",
    "segment": "divekit.apps.segment",
    "stylize": "divekit.apps.style",
    "embed": "divekit.apps.embed",
}


def _verb_module(verb: str):
    import importlib

    return importlib.import_module(VERB_MODULES[verb])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="divekit", description="Train and use the models of Dive into Deep Learning.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    t = sub.add_parser("train", help="train a model on a dataset", description="Train MODEL on a dataset.")
    t.add_argument("model", nargs="?", help="model name (see `divekit list models`)")
    t.add_argument("--recipe", help="named complete settings, e.g. fast (see divekit/recipes.py); flags override them")
    t.add_argument("--data", help="dataset name (see `divekit list datasets`); default: the model's or digits")
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--resize", type=int, help="resize images to RESIZE x RESIZE")
    t.add_argument("--augment", help="training-set augmentation for images: flip, crop or flip-crop")
    t.add_argument("--label-smoothing", type=float, help="classification: weight of the uniform target, e.g. 0.1")
    t.add_argument("--seed", type=int)
    t.add_argument("--optimizer", help="sgd, adam, adamw, rmsprop, adagrad, adadelta, or a from-scratch one: "
                   "sgd-scratch, momentum-scratch, adagrad-scratch, rmsprop-scratch, adadelta-scratch, adam-scratch")
    t.add_argument("--momentum", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--scheduler", help="learning-rate schedule: step, multistep, exponential, cosine, onecycle, plateau")
    t.add_argument("--scheduler-arg", type=_model_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="option of the schedule, e.g. gamma=0.5 or milestones=[5,8] (repeatable)")
    t.add_argument("--warmup-epochs", type=float, help="linear warmup before the cosine schedule")
    t.add_argument("--grad-clip", type=float, help="clip the global gradient norm")
    t.add_argument("--eval-every", type=int, help="evaluate the test/validation split every N epochs (default 1)")
    t.add_argument("--time-limit", type=float, help="stop after this many seconds of training (the running epoch "
                   "is cut short and evaluated)")
    t.add_argument("--patience", type=int, help="early stopping after N epochs without improvement")
    t.add_argument("--monitor", help="metric for early stopping and best.safetensors, e.g. test_acc (default: the loss)")
    t.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    t.add_argument("--precision", help="fp32 (default), bf16 (autocast) or fp16 (autocast + gradient scaler, CUDA)")
    t.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory layout for CNNs")
    t.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model (its compilation is not counted in the run's seconds)")
    t.add_argument("--optimizer-impl", help="torch optimizers: auto (default), for-loop, foreach or fused")
    t.add_argument("--data-dir", help="dataset cache folder (default: $DIVEKIT_DATA or ~/.cache/divekit/data)")
    t.add_argument("--out", help="run folder (default: runs/MODEL-DATA-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings (flags override it)")
    t.add_argument("--model-arg", type=_model_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the model factory (repeatable)")
    t.add_argument("--data-arg", type=_model_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. num_steps=64 or sampling=sequential (repeatable)")
    t.add_argument("--target", metavar="COLUMN", help="--data csv:PATH: the column to predict")
    t.add_argument("--features", metavar="A,B,C", help="--data csv:PATH: the input columns (default: all but the "
                   "target and the id column)")
    t.add_argument("--init-from", metavar="PATH", help="fine-tune: start from pretrained weights (a run folder, "
                   ".safetensors, or a .pt/.pth state dict); the output layer is replaced for the new classes")
    t.add_argument("--head-lr-mult", type=float, help="fine-tune: the output layer's lr is lr x this (default 10)")
    t.add_argument("--freeze-body", action="store_true", default=None,
                   help="fine-tune: train only the new output layer; the pretrained body stays fixed")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")

    e = sub.add_parser("eval", help="evaluate a run's model on its test split")
    e.add_argument("run_dir")
    e.add_argument("--which", choices=("best", "last"), default="best")
    e.add_argument("--data-dir")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="classify image files, or predict the rows of CSV files, with a run's model")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (png, jpg, ...), or CSV files for a run "
                    "trained with --data csv:PATH")
    pr.add_argument("--out", metavar="FILE", help="CSV inputs: write the predictions there (default: print them)")
    pr.add_argument("--proba", action="store_true", help="CSV inputs: add a probability column per class")
    pr.add_argument("--top", type=int, default=3, help="show the TOP most likely classes")
    pr.add_argument("--invert", action="store_true", help="invert gray levels (dark ink on white paper -> MNIST style)")
    pr.add_argument("--json", action="store_true")

    ge = sub.add_parser("generate", help="continue a text prefix with a run's language model")
    ge.add_argument("run_dir")
    ge.add_argument("--prefix", required=True, help='text to start from, e.g. "time traveller"')
    ge.add_argument("--chars", "--tokens", dest="num_preds", type=int, default=50,
                    help="how many characters (words, for a word-level model) to generate")
    ge.add_argument("--temperature", type=float, default=0.0, help="0: greedy (most likely next token); > 0: sample")
    ge.add_argument("--seed", type=int, default=0, help="seeds sampling (temperature > 0)")
    ge.add_argument("--json", action="store_true")

    tr = sub.add_parser("translate", help="translate sentences with a run's seq2seq model")
    tr.add_argument("run_dir")
    tr.add_argument("sentences", nargs="+", metavar="SENTENCE", help='e.g. "he\'s calm ."')
    tr.add_argument("--beam", type=int, default=1, help="beam size (1: greedy decoding)")
    tr.add_argument("--alpha", type=float, default=0.75, help="beam search length penalty: score / length^alpha")
    tr.add_argument("--heatmap", metavar="DIR", help="save each sentence's attention weights as a PNG in DIR")
    tr.add_argument("--json", action="store_true")

    ls = sub.add_parser("list", help="list models or datasets")
    ls.add_argument("what", choices=("models", "datasets"))
    ls.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'res*'")
    ls.add_argument("--json", action="store_true")

    sm = sub.add_parser("summary", help="layer-by-layer output shapes, parameters and multiply-adds of a model")
    sm.add_argument("model", help="model name (see `divekit list models`)")
    sm.add_argument("--input-shape", default=None,
                    help="C,H,W of one example, e.g. 1,28,28; default: 1 channel at the model's default --resize, else 28x28")
    sm.add_argument("--json", action="store_true")

    from ..apps.kaggle import add_arguments as kaggle_arguments

    kh = sub.add_parser("kaggle-house", help="k-fold cross-validation and a submission for Kaggle's house prices",
                        description="Kaggle house prices (book 5.7): k-fold log-RMSE, then submission.csv.")
    kaggle_arguments(kh)

    dm = sub.add_parser("demo", help="run one of the book's small experiments and save its plots")
    dm.add_argument("name", nargs="?", help="demo name; omit to list them")
    dm.add_argument("--out", default="demos", help="folder for the plots (default: demos/)")
    dm.add_argument("--json", action="store_true")

    d = sub.add_parser("data", help="download or verify dataset files")
    dsub = d.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    dl = dsub.add_parser("download", help="download a dataset's files into the data folder")
    dl.add_argument("name")
    dl.add_argument("--data-dir")
    dl.add_argument("--json", action="store_true")
    dv = dsub.add_parser("verify", help="check the hash of every dataset file present")
    dv.add_argument("--data-dir")
    dv.add_argument("--json", action="store_true")
    dd = dsub.add_parser("dir", help="print the data folder")
    dd.add_argument("--data-dir")
    for verb in VERB_MODULES:
        _verb_module(verb).add_parser(sub)
    return p


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))


# TrainConfig fields that `divekit train` sets from a flag of the same name (dashes for underscores)
TRAIN_FLAGS = (
    "recipe", "model", "data", "epochs", "lr", "batch_size", "resize", "augment", "label_smoothing", "seed",
    "optimizer", "momentum", "weight_decay", "scheduler", "warmup_epochs", "grad_clip", "time_limit", "eval_every", "patience",
    "monitor", "device", "precision", "channels_last", "data_dir", "out", "compile", "optimizer_impl",
    "init_from", "head_lr_mult", "freeze_body",
)


def cmd_train(args) -> int:
    from ..train.api import train

    flags = {name: getattr(args, name) for name in TRAIN_FLAGS}
    if args.model_arg:
        flags["model_args"] = dict(args.model_arg)
    if args.scheduler_arg:
        flags["scheduler_args"] = dict(args.scheduler_arg)
    if args.data_arg:
        flags["data_args"] = dict(args.data_arg)
    table = {k: v for k, v in (("target", args.target), ("features", args.features)) if v is not None}
    if table:  # --data csv:PATH options
        flags["data_args"] = {**flags.get("data_args", {}), **table}
    if args.resume:
        if args.config:
            raise DivekitError("--config cannot be combined with --resume: the run folder holds the config")
        result = train(resume=args.resume, progress=not args.no_progress, **{k: v for k, v in flags.items() if k != "model"})
    else:
        from ..train.api import resolve_config

        result = train(resolve_config(args.config, **flags), progress=not args.no_progress)
    summary = result.summary()
    from ..core import dist

    if not dist.is_main():  # under torchrun, rank 0 reports
        return 0
    if args.json:
        _print_json(summary)
    else:
        figures = "  ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.endswith(("_loss", "_acc")))
        print(f"{summary['model']} on {summary['data']}, {summary['epochs']} epochs, {summary['seconds']:.1f} s: {figures}")
        print(f"run folder: {summary['run_dir']}")
    return 0


def cmd_eval(args) -> int:
    from ..core.plot import confusion_figure, save_figure
    from ..data.registry import load_dataset
    from ..train.api import load_run
    from ..train.evaluate import classification_report

    model, ckpt = load_run(args.run_dir, args.which, args.device)
    meta, cfg = ckpt.meta, ckpt.meta["config"]
    if meta["task"] != "classification":
        raise DivekitError(f"`divekit eval` reports classification metrics; {args.run_dir} is a {meta['task']} run "
                           "(its metrics.json has the test loss per epoch)")
    if cfg["data"].startswith("csv:"):
        raise DivekitError(f"`divekit eval` reports on a test split; {args.run_dir} was trained on a CSV file, whose "
                           "held-out rows are its validation split (metrics.json has valid_acc per epoch); "
                           "use `divekit predict RUN_DIR new.csv` for new rows")
    device = next(model.parameters()).device
    data = load_dataset(cfg["data"], batch_size=cfg["batch_size"], resize=cfg["resize"], seed=cfg["seed"],
                        device=device, data_dir=args.data_dir or cfg["data_dir"], **cfg.get("data_args", {}))
    split = "test" if data.test is not None else "valid"  # an image folder has a validation split only
    classes = meta["classes"]
    report = classification_report(model, data.loaders()[split], len(classes))
    plot = save_figure(confusion_figure(report["confusion"], classes), Path(args.run_dir) / "confusion.png")
    out = {"run_dir": args.run_dir, "checkpoint": ckpt.path.name, "split": split,
           f"{split}_loss": round(report["loss"], 6), f"{split}_acc": round(report["acc"], 6), "n": report["n"],
           "per_class_acc": {c: round(a, 4) for c, a in zip(classes, report["per_class_acc"])},
           "confusion_plot": str(plot)}
    if args.json:
        _print_json(out)
    else:
        print(f"{args.run_dir} ({ckpt.path.name}) on {cfg['data']} {split} split, {report['n']} examples")
        print(f"{split} loss {report['loss']:.4f}   {split} accuracy {report['acc']:.4f}")
        for c, a in out["per_class_acc"].items():
            print(f"  {c:>12s}  {a:.4f}")
        print(f"confusion matrix: {plot}")
    return 0


def cmd_predict(args) -> int:
    if any(str(p).lower().endswith(".csv") for p in args.inputs):
        from ..apps.tabular import run_predict

        return run_predict(args)
    from ..apps.predict import predict_images
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    rows = predict_images(model, ckpt.meta, args.inputs, top=args.top, invert=args.invert)
    if args.json:
        _print_json({"predictions": rows})
    else:
        for row in rows:
            guesses = ", ".join(f"{g['class']} {g['prob']:.3f}" for g in row["top"])
            print(f"{row['input']}: {guesses}")
    return 0


def cmd_generate(args) -> int:
    from ..apps.predict import generate_text
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    text = generate_text(model, ckpt.meta, args.prefix, args.num_preds, temperature=args.temperature, seed=args.seed)
    if args.json:
        _print_json({"prefix": args.prefix, "text": text, "temperature": args.temperature})
    else:
        print(text)
    return 0


def cmd_translate(args) -> int:
    from ..apps.predict import translate_sentences
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    rows = translate_sentences(model, ckpt.meta, args.sentences, args.beam, args.alpha, args.heatmap)
    if args.json:
        _print_json({"translations": rows, "beam": args.beam})
    else:
        for row in rows:
            print(f"{row['source']} => {row['translation']}" + (f"  ({row['heatmap']})" if "heatmap" in row else ""))
    return 0


def cmd_list(args) -> int:
    from ..data.registry import DATASETS
    from ..models.registry import MODELS

    registry = MODELS if args.what == "models" else DATASETS
    names = registry.names(args.pattern)
    if args.json:
        _print_json({args.what: names})
    else:
        width = max((len(n) for n in names), default=0)
        for n in names:
            print(f"{n:<{width}}  {registry.get(n).doc}")
    return 0


def cmd_kaggle_house(args) -> int:
    from ..apps.kaggle import main as kaggle_main

    return kaggle_main(args)


def cmd_summary(args) -> int:
    from ..models.summary import summary_main

    return summary_main(args.model, args.input_shape, json=args.json)


def cmd_demo(args) -> int:
    from ..book.demos import DEMOS, run_demo

    if args.name is None:
        if args.json:
            _print_json({"demos": sorted(DEMOS)})
        else:
            for name in sorted(DEMOS):
                print(f"{name:<14s} {(DEMOS[name].__doc__ or '').splitlines()[0]}")
        return 0
    result = run_demo(args.name, Path(args.out) / args.name)
    if args.json:
        _print_json(result)
    else:
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_data(args) -> int:
    from ..data import hub

    if args.data_verb == "dir":
        print(hub.data_dir(args.data_dir))
        return 0
    if args.data_verb == "download":
        paths = hub.fetch(args.name, args.data_dir)
        if args.json:
            _print_json({"dataset": args.name, "files": [str(p) for p in paths]})
        else:
            print("\n".join(str(p) for p in paths))
        return 0
    rows = hub.verify(args.data_dir)
    bad = [r for r in rows if r[2].startswith("BAD")]
    if args.json:
        _print_json({"data_dir": str(hub.data_dir(args.data_dir)), "files": [dict(zip(("dataset", "path", "status"), r)) for r in rows],
                     "bad": len(bad)})
    else:
        for dataset, path, status in rows:
            print(f"{dataset:<18s} {path:<50s} {status}")
    return 1 if bad else 0


def _process_group(args):
    """Under torchrun, `divekit train` joins the process group for its run (see divekit.core.dist)."""
    if args.verb != "train":
        return contextlib.nullcontext()
    from ..core import dist

    return dist.process_group(device=args.device or "auto")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "generate": cmd_generate, "translate": cmd_translate, "list": cmd_list, "data": cmd_data,
                "demo": cmd_demo, "summary": cmd_summary,
                "kaggle-house": cmd_kaggle_house}
    for verb in VERB_MODULES:
        handlers[verb] = _verb_module(verb).run
    try:
        with _process_group(args):
            return handlers[args.verb](args)
    except DivekitError as e:
        print(f"divekit: error: {e}", file=sys.stderr)
        if getattr(args, "json", False):
            _print_json({"error": str(e), "kind": type(e).__name__})
        return 2
    except KeyboardInterrupt:
        print("divekit: interrupted; the last finished epoch's checkpoint is in the run folder (use --resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
