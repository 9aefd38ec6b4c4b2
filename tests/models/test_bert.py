"""BERT (book 15.8-15.10, 16.6-16.7): shapes, the MLM head's positions, masking, the losses,
fine-tuning heads, a short real pretraining run on PTB, and `divekit embed`."""

import json

import pytest
import torch
import torch.nn.functional as F

from divekit.cli import main
from divekit.core.errors import DivekitError
from divekit.data.loader import TensorLoader
from divekit.data.registry import DataBundle, load_dataset
from divekit.models import MODELS, create_model
from divekit.models.bert import (
    BERTClassifier,
    BERTEncoder,
    BERTModel,
    BERTTagger,
    MaskLM,
    bert_encoding,
    load_pretrained,
)
from divekit.tasks.bert import BertPretrain, BertTagging, bert_pretrain_losses
from divekit.train.api import fit, load_run, resolve_config
from divekit.train.config import TrainConfig

V, H = 50, 16


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _small(**kw):
    return BERTModel(V, num_hiddens=H, ffn_num_hiddens=32, num_heads=2, num_blks=2, dropout=0.0, max_len=12, **kw)


def test_shapes():
    torch.manual_seed(0)
    net = _small()
    tokens = torch.randint(0, V, (3, 8))
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]] * 3)
    encoded, mlm, nsp = net(tokens, segments, torch.tensor([8, 6, 5]), torch.tensor([[1, 5, 2]] * 3))
    assert encoded.shape == (3, 8, H) and mlm.shape == (3, 3, V) and nsp.shape == (3, 2)
    encoded, mlm, nsp = net(tokens, segments)
    assert mlm is None and nsp.shape == (3, 2)
    with pytest.raises(ValueError, match="max_len"):
        net(torch.zeros(1, 13, dtype=torch.long), torch.zeros(1, 13, dtype=torch.long))


def test_mlm_predicts_at_the_given_positions_only():
    torch.manual_seed(0)
    mlm = MaskLM(V, H)
    X = torch.randn(2, 7, H, requires_grad=True)
    positions = torch.tensor([[1, 5, 2], [6, 0, 0]])
    out = mlm(X, positions)  # (2, 3, V)
    expected = torch.stack([torch.stack([mlm.mlp(X[b, p]) for p in row]) for b, row in enumerate(positions.tolist())])
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    used = torch.zeros(2, 7, dtype=torch.bool)
    used[0, [1, 5, 2]] = True
    used[1, [6, 0]] = True
    assert bool((X.grad[~used] == 0).all()) and bool((X.grad[used] != 0).any(dim=-1).all())


def test_padding_does_not_change_the_encodings_of_real_tokens():
    torch.manual_seed(0)
    enc = BERTEncoder(V, H, 32, 2, 2, 0.0, max_len=12).eval()
    tokens = torch.randint(0, V, (1, 9))
    segments = torch.zeros(1, 9, dtype=torch.long)
    a = enc(tokens, segments, torch.tensor([5]))
    tokens2 = tokens.clone()
    tokens2[0, 5:] = torch.randint(0, V, (4,))  # change the padding
    b = enc(tokens2, segments, torch.tensor([5]))
    torch.testing.assert_close(a[0, :5], b[0, :5])
    segments2 = segments.clone()
    segments2[0, 3:5] = 1
    assert not torch.allclose(enc(tokens, segments2, torch.tensor([5]))[0, :3], a[0, :3])  # segments matter


def test_positional_embeddings_are_learned():
    torch.manual_seed(0)
    enc = BERTEncoder(V, H, 32, 2, 1, 0.0, max_len=12)
    assert isinstance(enc.pos_embedding, torch.nn.Parameter) and enc.pos_embedding.shape == (1, 12, H)
    enc(torch.randint(0, V, (2, 6)), torch.zeros(2, 6, dtype=torch.long)).sum().backward()
    g = enc.pos_embedding.grad[0]
    assert bool((g[:6] != 0).any(dim=-1).all()) and bool((g[6:] == 0).all())


def test_pretrain_losses_weight_real_positions_only():
    torch.manual_seed(0)
    mlm_Y_hat, nsp_Y_hat = torch.randn(2, 3, V), torch.randn(2, 2)
    mlm_Y = torch.randint(0, V, (2, 3))
    weights = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    nsp_y = torch.tensor([1, 0])
    mlm_l, nsp_l = bert_pretrain_losses(mlm_Y_hat, nsp_Y_hat, weights, mlm_Y, nsp_y)
    real = [F.cross_entropy(mlm_Y_hat[b, p], mlm_Y[b, p], reduction="sum") for b, p in ((0, 0), (0, 1), (1, 0))]
    torch.testing.assert_close(mlm_l, sum(real) / 3)
    torch.testing.assert_close(nsp_l, F.cross_entropy(nsp_Y_hat, nsp_y))


def test_pretrain_task_reports_mlm_and_nsp_separately():
    torch.manual_seed(0)
    net = _small()
    batch = (torch.randint(5, V, (4, 10)), torch.zeros(4, 10, dtype=torch.long), torch.tensor([10, 9, 8, 7]),
             torch.tensor([[1, 2], [3, 0], [2, 4], [5, 0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0]]),
             torch.randint(5, V, (4, 2)), torch.tensor([1, 0, 1, 1]))
    task = BertPretrain()
    with torch.no_grad():
        loss, sums, n = task.step(net, batch)
    out = task.summarize({k: float(v) for k, v in sums.items()}, n)
    assert set(out) == {"loss", "mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"}
    assert out["loss"] == pytest.approx(out["mlm_loss"] + out["nsp_loss"], rel=1e-6)
    assert out["loss"] == pytest.approx(loss.item(), rel=1e-5)  # one batch: the same number
    assert out["mlm_loss"] == pytest.approx(float(torch.log(torch.tensor(float(V)))), rel=0.5)


def test_fine_tuning_heads_and_pretrained_weights():
    torch.manual_seed(0)
    bert = _small()
    sizes = dict(num_hiddens=H, ffn_num_hiddens=32, num_heads=2, num_blks=2, dropout=0.0, max_len=12)
    clf = BERTClassifier(V, 3, **sizes)
    tagger = BERTTagger(V, 5, **sizes)
    tokens, segments, valid = torch.randint(0, V, (2, 9)), torch.zeros(2, 9, dtype=torch.long), torch.tensor([9, 4])
    assert clf(tokens, segments, valid).shape == (2, 3) and tagger(tokens, segments, valid).shape == (2, 9, 5)
    load_pretrained(clf, bert.state_dict())
    load_pretrained(tagger, bert.state_dict())
    torch.testing.assert_close(clf.encoder.pos_embedding, bert.encoder.pos_embedding)
    torch.testing.assert_close(clf.hidden[0].weight, bert.hidden[0].weight)
    clf.eval(), bert.eval()
    torch.testing.assert_close(clf.encoder(tokens, segments, valid), bert(tokens, segments, valid)[0])
    with pytest.raises(DivekitError, match="do not fit"):
        load_pretrained(BERTClassifier(V, 3, num_hiddens=8, num_heads=2, max_len=12), bert.state_dict())


def test_tagger_learns_through_the_tagging_task():
    """Tag every token with its parity; <cls>, <sep> and padding carry -100 and are not counted."""
    g = torch.Generator().manual_seed(0)
    N, T = 256, 10
    tokens = torch.randint(5, 15, (N, T), generator=g)
    valid = torch.randint(4, T + 1, (N,), generator=g)
    tags = tokens % 2
    tags[:, 0] = -100
    tags[torch.arange(T) >= valid[:, None] - 1] = -100
    data = DataBundle("tags", "bert-tagging", TensorLoader(tokens, torch.zeros_like(tokens), valid, tags,
                                                           batch_size=32, shuffle=True))
    torch.manual_seed(0)
    model = BERTTagger(15, 2, num_hiddens=16, ffn_num_hiddens=32, num_heads=2, num_blks=1, dropout=0.0, max_len=T)
    result = fit(model, data, TrainConfig(optimizer="adam", lr=0.01, epochs=3, seed=0), run_dir=False, progress=False)
    assert result.history[-1]["train_acc"] > 0.95  # chance: 0.5
    batch = next(iter(data.train))
    _, sums, _ = BertTagging().step(model, batch)
    assert int(sums["tokens"]) == int((batch[3] != -100).sum())


def test_registered_defaults():
    entry = MODELS.get("bert-small")
    assert entry.defaults["data"] == "ptb" and entry.defaults["data_args"] == {"objective": "bert"}
    cfg = resolve_config(model="bert-small", data="ptb", data_args={"steps_per_epoch": 3})
    assert cfg.data_args == {"objective": "bert", "steps_per_epoch": 3} and cfg.optimizer == "adam" and cfg.lr == 0.001
    net = create_model("bert-small", context={"vocab_size": 100})
    assert net.encoder.pos_embedding.shape == (1, 64, 128) and len(net.encoder.blks) == 2


# --------------------------------------------------------------------------------------------
# A short real pretraining run on PTB, then embed and fine-tuning plumbing
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bert") / "run"
    code = main(["train", "bert-small", "--data", "ptb", "--data-dir", str(shared_data), "--epochs", "3",
                 "--batch-size", "32", "--data-arg", "max_sentences=1500", "--data-arg", "steps_per_epoch=12",
                 "--data-arg", "max_len=48", "--out", str(out), "--no-progress", "--json"])
    assert code == 0
    return out


def test_pretraining_mlm_loss_falls(pretrained_run):
    history = json.loads((pretrained_run / "metrics.json").read_text())
    history = history["history"] if isinstance(history, dict) else history
    first, last = history[0], history[-1]
    for key in ("train_mlm_loss", "train_nsp_loss", "valid_mlm_loss", "valid_nsp_loss", "train_nsp_acc"):
        assert key in last
    vocab_size = len(load_run(pretrained_run)[1].meta["context"]["vocab"]["idx_to_token"])
    assert first["train_mlm_loss"] < torch.log(torch.tensor(float(vocab_size))).item()
    assert last["train_mlm_loss"] < first["train_mlm_loss"] - 0.5
    assert last["valid_mlm_loss"] < 6.0


def test_embed_gives_crane_different_vectors(pretrained_run, capsys):
    capsys.readouterr()
    code = main(["embed", str(pretrained_run), "a crane is flying", "--pair", "a crane driver came", "he just left",
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["inputs"][1]["segments"] == [0] * 6 + [1] * 4
    crane = next(s for s in out["shared_words"] if s["word"] == "crane")
    assert crane["occurrences"] == [[0, 2], [1, 2]]
    assert crane["cosine"][0][1] < 0.999  # one word, two contexts, two vectors
    model, ckpt = load_run(pretrained_run)
    from divekit.data.text import Vocab

    vocab = Vocab.from_dict(ckpt.meta["context"]["vocab"])
    X, tokens, _ = bert_encoding(model, vocab, ["a", "crane", "is", "flying"])
    assert X.shape == (6, 128) and tokens[0] == "<cls>"
    assert main(["embed", str(pretrained_run), "--json"]) == 2  # nothing to encode


def test_fine_tuning_set_from_a_pretrained_run(pretrained_run, shared_data, tmp_path):
    data = load_dataset("ptb-bshift", batch_size=16, data_dir=str(shared_data), pretrained=str(pretrained_run),
                        num_train=64, num_test=32)
    assert data.train.tensors[0].shape == (64, 48)  # the pretrained run's max_len
    model = create_model("bert-classifier", context=data.context)
    pretrained, _ = load_run(pretrained_run)
    torch.testing.assert_close(model.encoder.token_embedding.weight, pretrained.encoder.token_embedding.weight)
    result = fit(model, data, TrainConfig(model="bert-classifier", data="ptb-bshift", optimizer="adam", lr=1e-4, epochs=1,
                                      batch_size=16), run_dir=tmp_path / "ft",
                 progress=False)
    assert "test_acc" in result.metrics
    reloaded, ckpt = load_run(tmp_path / "ft")  # rebuilt from the run alone: no pretrained weights in its meta
    assert "bert_state" not in ckpt.meta["context"]
    torch.testing.assert_close(reloaded.output.weight, result.model.output.weight.cpu())
