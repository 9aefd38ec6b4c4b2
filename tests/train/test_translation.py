"""Machine translation through the trainer: the seq2seq task's masked loss, short real runs on
fra-eng for the three models, and `divekit translate` with beam search and attention heatmaps."""

from __future__ import annotations

import json

import pytest
import torch

import divekit as dk
from divekit.cli import main
from divekit.models.seq2seq import masked_cross_entropy
from divekit.tasks.base import Seq2Seq

SMALL = {  # models small enough for a few seconds of training
    "seq2seq": {"embed_size": 32, "num_hiddens": 64, "num_layers": 1},
    "seq2seq-attention": {"embed_size": 32, "num_hiddens": 64, "num_layers": 1},
    "transformer": {"num_hiddens": 64, "ffn_num_hiddens": 64, "num_heads": 4, "num_blks": 2},
}


def test_seq2seq_loss_and_metrics_count_real_tokens_only():
    torch.manual_seed(0)
    pad = 1
    logits = torch.randn(3, 4, 6)
    Y = torch.tensor([[2, 3, pad, pad], [4, 5, 3, pad], [3, pad, pad, pad]])
    task = Seq2Seq(pad)
    loss = task.default_loss(logits, Y, training=True)
    manual = torch.stack([-torch.log_softmax(logits[b, t], -1)[Y[b, t]]
                          for b in range(3) for t in range(4) if Y[b, t] != pad]).mean()
    assert torch.allclose(loss, manual) and torch.allclose(loss, masked_cross_entropy(logits, Y, pad))

    class Fixed(torch.nn.Module):
        def forward(self, X, dec_X, X_valid_len):
            return logits

    _, sums, n = task.step(Fixed(), (None, None, None, Y))
    assert n == 3 and int(sums["tokens"]) == 6
    metrics = task.summarize({k: float(v) for k, v in sums.items()}, n)
    assert metrics["loss"] == pytest.approx(float(manual), rel=1e-6)
    assert metrics["acc"] == pytest.approx(float(((logits.argmax(-1) == Y) & (Y != pad)).sum()) / 6)


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    """Each model, small, trained 3 epochs on the first 3,000 pairs of fra-eng."""
    out = {}
    for name, args in SMALL.items():
        run_dir = tmp_path_factory.mktemp(name)
        out[name] = dk.train(model=name, data="fra-eng", epochs=3, lr=0.01, model_args=args,
                             data_args={"num_examples": 3000}, data_dir=str(shared_data), out=str(run_dir),
                             progress=False)
    return out


@pytest.mark.parametrize("name", list(SMALL))
def test_translation_models_learn(runs, name):
    history = runs[name].history
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    assert history[-1]["train_acc"] > 0.4  # token accuracy; chance is 1 / 1,000 target words


@pytest.mark.parametrize("name", ["seq2seq-attention", "transformer"])
def test_translate_cli_with_beam_search_and_heatmaps(runs, name, tmp_path, capsys):
    run_dir = runs[name].run_dir
    heatmaps = tmp_path / "maps"
    assert main(["translate", str(run_dir), "Go.", "he's calm .", "--beam", "3", "--heatmap", str(heatmaps),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = out["translations"]
    assert [r["source"] for r in rows] == ["go .", "he's calm ."]  # the book's preprocessing
    assert all(r["translation"] for r in rows)
    assert all((heatmaps / f"attention-{i}.png").stat().st_size > 0 for i in range(2))


def test_translate_refuses_other_runs_and_bad_beams(runs, tmp_path, capsys):
    assert main(["translate", str(runs["seq2seq"].run_dir), "go .", "--beam", "0"]) == 2
    assert "--beam" in capsys.readouterr().err
    dk.train(model="softmax-regression", data="digits", epochs=1, out=str(tmp_path), progress=False)
    assert main(["translate", str(tmp_path), "go ."]) == 2
    assert "translation run" in capsys.readouterr().err
