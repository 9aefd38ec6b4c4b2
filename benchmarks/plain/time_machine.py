"""A plain PyTorch script, as one would write it from the book: a char-level GRU on The Time Machine.

    python benchmarks/plain/time_machine.py [--epochs N] [--lr LR]

The book's preprocessing (letters and spaces, lower case), a character vocabulary, the last 10% of
the text held out; random sampling of (batch, 32-step) subsequences, a fresh state per minibatch,
one-hot inputs into nn.GRU(28, 32) and a linear output layer, SGD with gradient clipping at norm 1,
a per-batch `.item()` for the loss, and the perplexity of the held-out text at the end. The same
settings as `divekit train gru --data time-machine`. Prints one JSON line: valid_ppl, train_ppl.
"""

import argparse
import collections
import json
import math
import os
import re
import time

import torch
import torch.nn.functional as F
from torch import nn


def load(root: str) -> tuple[torch.Tensor, int]:
    """The preprocessed book as character indices (most frequent first, 0 for unknown) and the vocab size."""
    with open(os.path.join(root, "timemachine.txt"), encoding="utf-8") as f:
        text = re.sub("[^A-Za-z]+", " ", f.read()).lower()
    counts = collections.Counter(text)
    index = {c: i + 1 for i, (c, _) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1]))}
    return torch.tensor([index[c] for c in text]), len(index) + 1


def random_batches(corpus: torch.Tensor, batch_size: int, num_steps: int):
    """Book 9.3.4.1: a random offset, then the non-overlapping subsequences in random order."""
    corpus = corpus[torch.randint(num_steps, ()).item():]
    starts = torch.arange(0, (len(corpus) - 1) // num_steps * num_steps, num_steps)
    starts = starts[torch.randperm(len(starts))]
    for i in range(0, len(starts) - batch_size + 1, batch_size):
        idx = starts[i:i + batch_size, None] + torch.arange(num_steps)
        yield corpus[idx], corpus[idx + 1]


class GRULM(nn.Module):
    def __init__(self, vocab_size: int, num_hiddens: int = 32):
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = nn.GRU(vocab_size, num_hiddens)
        self.linear = nn.Linear(num_hiddens, vocab_size)

    def forward(self, X):
        outputs, _ = self.rnn(F.one_hot(X.T, self.vocab_size).float())
        return self.linear(outputs).transpose(0, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-steps", type=int, default=32)
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA", "."))
    args = p.parse_args()
    torch.manual_seed(0)
    corpus, vocab_size = load(args.data_dir)
    cut = int(len(corpus) * 0.9)
    train, valid = corpus[:cut], corpus[cut:]
    net = GRULM(vocab_size)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr)
    start = time.perf_counter()
    for _ in range(args.epochs):
        total, n = 0.0, 0
        for X, Y in random_batches(train, args.batch_size, args.num_steps):
            loss = F.cross_entropy(net(X).reshape(-1, vocab_size), Y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total, n = total + loss.item() * Y.numel(), n + Y.numel()
    with torch.no_grad():  # the held-out text in consecutive (batch, num_steps) windows
        m = (len(valid) - 1) // args.num_steps * args.num_steps
        X, Y = valid[:m].reshape(-1, args.num_steps), valid[1:m + 1].reshape(-1, args.num_steps)
        valid_loss = sum(F.cross_entropy(net(x).reshape(-1, vocab_size), y.reshape(-1), reduction="sum").item()
                         for x, y in zip(X.split(args.batch_size), Y.split(args.batch_size))) / Y.numel()
    print(json.dumps({"valid_ppl": math.exp(valid_loss), "train_ppl": math.exp(total / n),
                      "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
