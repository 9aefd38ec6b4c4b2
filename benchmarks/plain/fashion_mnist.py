"""A plain PyTorch script, as one would write it from the book: train MODEL on Fashion-MNIST.

    python benchmarks/plain/fashion_mnist.py lenet|softmax-regression|mlp [--epochs N] [--lr LR]

Tensors in memory (read from $DIVEKIT_DATA/FashionMNIST/raw/*.gz), pixels scaled to [0, 1], minibatch
SGD with a per-batch `.item()` for the loss, and a test evaluation at the end. The models and their
initialization are those of divekit's registered ones. Prints one JSON line: test_acc, train_loss.
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
from torch import nn


def read_idx(path: str) -> np.ndarray:
    """An idx file (.gz) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64."""
    raw = os.path.join(root, "FashionMNIST", "raw")
    x = read_idx(os.path.join(raw, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(raw, f"{split}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.copy()).float().div_(255).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def build(name: str) -> nn.Module:
    """The book's models with divekit's initialization."""
    if name == "lenet":
        net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
            nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))
        for m in net:
            if type(m) in (nn.Conv2d, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        return net
    if name == "softmax-regression":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        net[1].weight.data.normal_(0, 0.01)
        net[1].bias.data.zero_()
        return net
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    raise SystemExit(f"unknown model {name}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=("lenet", "softmax-regression", "mlp"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA", "."))
    args = p.parse_args()
    torch.manual_seed(0)
    x, y = load(args.data_dir, "train")
    x_test, y_test = load(args.data_dir, "t10k")
    net = build(args.model)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        total, n = 0.0, 0
        for idx in torch.randperm(len(x)).split(args.batch_size):
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(xb).argmax(1) == yb).sum()) for xb, yb in zip(x_test.split(1024), y_test.split(1024)))
    print(json.dumps({"test_acc": correct / len(x_test), "train_loss": total / n,
                      "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
