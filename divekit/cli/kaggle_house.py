"""`divekit kaggle-house`: k-fold cross-validation and a submission for Kaggle's house prices (book 5.7)."""

from __future__ import annotations

from .common import device, print_json

MODELS = ("linear", "mlp")  # the keys of divekit.apps.kaggle.MODELS, named here so --help does not import pandas


def add_parser(sub) -> None:
    """Register `divekit kaggle-house`; unset options take the model's defaults (divekit.apps.kaggle)."""
    p = sub.add_parser("kaggle-house", help="k-fold cross-validation and a submission for Kaggle's house prices",
                       description="Kaggle house prices (book 5.7): k-fold log-RMSE, then submission.csv.")
    p.add_argument("--k", type=int, default=5, help="number of cross-validation folds (default 5)")
    p.add_argument("--model", choices=MODELS, default="linear",
                   help="linear regression or an MLP with one hidden layer (default linear)")
    p.add_argument("--epochs", type=int, help="passes over the training rows")
    p.add_argument("--lr", type=float, help="Adam's learning rate")
    p.add_argument("--weight-decay", type=float, help="L2 penalty on the weights")
    p.add_argument("--batch-size", type=int, help="rows per minibatch")
    p.add_argument("--num-hiddens", type=int, help="hidden units of the MLP")
    p.add_argument("--dropout", type=float, help="dropout rate of the MLP's hidden layer")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--data-dir", help="dataset cache folder (default: $DIVEKIT_DATA or ~/.cache/divekit/data)")
    p.add_argument("--out", help="output folder (default: runs/kaggle-house-MODEL-TIME)")
    p.add_argument("--no-progress", action="store_true", help="no per-fold progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


def run(args) -> int:
    """Cross-validate, write the submission, and print the per-fold table and the means."""
    # deferred for start-up time: divekit.apps.kaggle imports pandas and the trainer
    from ..apps.kaggle import run_kaggle_house

    results = run_kaggle_house(
        args.data_dir, k=args.k, model=args.model, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
        batch_size=args.batch_size, num_hiddens=args.num_hiddens, dropout=args.dropout, seed=args.seed,
        device=args.device, out_dir=args.out, progress=not args.no_progress,
    )
    print(f"{'fold':>4}  {'train log-rmse':>14}  {'valid log-rmse':>14}")
    for row in results["folds"]:
        print(f"{row['fold']:>4}  {row['train_log_rmse']:>14.4f}  {row['valid_log_rmse']:>14.4f}")
    print(f"{'mean':>4}  {results['train_log_rmse']:>14.4f}  {results['valid_log_rmse']:>14.4f}"
          f"  (valid std {results['valid_log_rmse_std']:.4f})")
    print(f"{results['k']}-fold {results['model']} in {results['seconds']:.1f} s; submission: {results['submission']}")
    if args.json:
        keys = ("k", "model", "folds", "train_log_rmse", "valid_log_rmse", "seconds", "submission", "out_dir")
        print_json({key: results[key] for key in keys} | {"settings": results["settings"]})
    return 0
