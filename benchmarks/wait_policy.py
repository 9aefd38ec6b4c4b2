"""Seconds of small training loops under each OpenMP wait policy, quiet and with one core busy.

    python benchmarks/wait_policy.py

Fresh processes (plain torch, no divekit) time 300 MLP steps, 150 char-GRU steps and 40 LeNet steps
(batches as in benchmarks/peers.py) with OMP_WAIT_POLICY=PASSIVE, torch's default (spinning), one
thread, and GOMP_SPINCOUNT=10000; then again while a spinning process holds one core. Prints medians
of 3 per setting. Why divekit chooses PASSIVE only when another program is busy (docs/RESULTS.md).
"""
import json
import statistics
import subprocess
import sys

from common import clean_env  # benchmarks/common.py

CHILD = r'''
import sys, time, torch, torch.nn.functional as F
from torch import nn
torch.manual_seed(0)
kind = sys.argv[1]
if kind == "mlp":
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)); x = torch.randn(256, 1, 28, 28); y = torch.randint(0, 10, (256,)); steps = 300
elif kind == "gru":
    class M(nn.Module):
        def __init__(s): super().__init__(); s.rnn = nn.GRU(28, 32); s.lin = nn.Linear(32, 28)
        def forward(s, X): o, _ = s.rnn(F.one_hot(X.T, 28).float()); return s.lin(o).transpose(0, 1).reshape(-1, 28)
    net = M(); x = torch.randint(0, 28, (32, 32)); y = torch.randint(0, 28, (32 * 32,)); steps = 150
else:
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))
    x = torch.randn(256, 1, 28, 28); y = torch.randint(0, 10, (256,)); steps = 40
params = list(net.parameters())
for i in range(steps + 5):
    if i == 5: t = time.perf_counter()
    loss = F.cross_entropy(net(x), y)
    for p in params: p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in params: p -= 0.1 * p.grad
print(time.perf_counter() - t)
'''
SPIN = "import sys, time\nend = time.time() + 120\nwhile time.time() < end: pass"
ENVS = {"passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "default": {}, "1thread": {"OMP_NUM_THREADS": "1"},
        "spin10k": {"GOMP_SPINCOUNT": "10000"}}
res = {}
for busy in (False, True):
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        for kind in (("mlp", "gru", "lenet") if not busy else ("lenet", "mlp", "gru")):
            for r in range(3):
                for name, env in ENVS.items():
                    out = subprocess.run([sys.executable, "-c", CHILD, kind], env=clean_env(**env), capture_output=True, text=True, check=True).stdout
                    res.setdefault(f"{kind}{'-busy' if busy else ''}", {}).setdefault(name, []).append(float(out))
    finally:
        if spinner: spinner.kill(); spinner.wait()
for k, v in res.items():
    print(k, {n: round(statistics.median(t), 3) for n, t in v.items()}, flush=True)
print(json.dumps(res))
