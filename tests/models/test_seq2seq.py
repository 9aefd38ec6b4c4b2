"""The RNN encoder-decoder (book 10.7), Bahdanau attention (book 11.4) and the masked loss."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from divekit.core.errors import ConfigError
from divekit.models import create_model, list_models
from divekit.models.decoding import greedy_decode
from divekit.models.encoder_decoder import TRANSLATION_DEFAULTS
from divekit.models.registry import MODELS
from divekit.models.seq2seq import Seq2SeqEncoder, masked_cross_entropy

pytestmark = pytest.mark.usefixtures("one_thread")

B, T_SRC, T_DEC, V_SRC, V_TGT, E, H, L = 4, 7, 5, 10, 9, 8, 16, 2
NAMES = ["seq2seq", "seq2seq-attention"]


def small(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    kw = dict(dict(embed_size=E, num_hiddens=H, num_layers=L, dropout=0.0), **kw)
    return create_model(name, src_vocab_size=V_SRC, tgt_vocab_size=V_TGT, **kw).eval()


def source_batch():
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, V_SRC, (B, T_SRC), generator=g)
    valid = torch.tensor([7, 3, 5, 1])
    dec_X = torch.randint(0, V_TGT, (B, T_DEC), generator=g)
    return X, valid, dec_X


def test_registry_and_the_books_sizes():
    assert list_models("seq2seq*") == NAMES and set(NAMES) <= set(list_models(tag="seq2seq"))
    for name in NAMES:
        entry = MODELS.get(name)
        assert entry.defaults == TRANSLATION_DEFAULTS and "text" in entry.tags
        model = create_model(name, context={"src_vocab_size": 20, "tgt_vocab_size": 30, "num_classes": 3})
        gru = model.encoder.rnn
        assert (gru.input_size, gru.hidden_size, gru.num_layers, gru.dropout) == (256, 256, 2, 0.2)
        assert model.encoder.embedding.num_embeddings == 20 and model.decoder.dense.out_features == 30
        assert model.decoder.rnn.input_size == 256 + 256  # embedding and context


def test_encoder_shapes_time_first():
    encoder = Seq2SeqEncoder(V_SRC, E, H, L)
    X, valid, _ = source_batch()
    outputs, state = encoder(X, valid)
    assert outputs.shape == (T_SRC, B, H) and state.shape == (L, B, H)
    torch.testing.assert_close(outputs[-1], state[-1])  # the last layer's final state is its last output


def test_xavier_init_of_the_gru_weights():
    gru = Seq2SeqEncoder(V_SRC, E, 64, L).rnn
    for name, W in gru.named_parameters():
        W = W.detach()
        if name.startswith("weight"):
            bound = math.sqrt(6 / (W.shape[0] + W.shape[1]))  # fan_out = 3H, fan_in = inputs
            assert W.abs().max() <= bound and W.abs().max() > 0.95 * bound
            assert W.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("name", NAMES)
def test_decoder_shapes_and_state(name):
    model = small(name)
    X, valid, dec_X = source_batch()
    assert model(X, dec_X, valid).shape == (B, T_DEC, V_TGT)
    state = model.decoder.init_state(model.encoder(X, valid), valid)
    logits, state = model.decoder(dec_X, state)
    assert logits.shape == (B, T_DEC, V_TGT)
    enc_outputs, hidden_state = state[0], state[1]
    assert hidden_state.shape == (L, B, H)
    assert enc_outputs.shape == ((T_SRC, B, H) if name == "seq2seq" else (B, T_SRC, H))


@pytest.mark.parametrize("name", NAMES)
def test_step_by_step_equals_teacher_forcing(name):
    """Feeding the decoder one token at a time, carrying its state, gives the logits of one pass."""
    model = small(name)
    X, valid, dec_X = source_batch()
    state = model.decoder.init_state(model.encoder(X, valid), valid)
    steps = []
    for t in range(T_DEC):
        logits, state = model.decoder(dec_X[:, t:t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), model(X, dec_X, valid))


@pytest.mark.parametrize("name", NAMES)
def test_reorder_state_picks_batch_rows(name):
    """Decoding a batch and then reordering its state is decoding the reordered batch."""
    model = small(name)
    X, valid, dec_X = source_batch()
    index = torch.tensor([2, 0, 0, 3, 1])  # drops none, repeats one, as beam search does
    state = model.decoder.init_state(model.encoder(X, valid), valid)
    _, state = model.decoder(dec_X[:, :3], state)
    reordered, _ = model.decoder(dec_X[index, 3:], model.decoder.reorder_state(state, index))
    state = model.decoder.init_state(model.encoder(X[index], valid[index]), valid[index])
    _, state = model.decoder(dec_X[index, :3], state)
    direct, _ = model.decoder(dec_X[index, 3:], state)
    torch.testing.assert_close(reordered, direct)


def test_attention_weights_are_masked_distributions():
    model = small("seq2seq-attention")
    X, valid, dec_X = source_batch()
    model(X, dec_X, valid)
    weights = model.decoder.attention_weights
    assert weights.shape == (B, T_DEC, T_SRC)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(B, T_DEC))
    padded = torch.arange(T_SRC)[None, None, :] >= valid[:, None, None]  # (B, 1, T_SRC)
    assert (weights[padded.expand_as(weights)] == 0).all()
    assert (weights[~padded.expand_as(weights)] > 0).all()
    assert small("seq2seq").decoder.attention_weights is None


def test_masked_cross_entropy_against_a_loop_over_tokens():
    pad = 1
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, V_TGT, generator=g, dtype=torch.float64)
    Y = torch.randint(2, V_TGT, (3, 6), generator=g)
    Y[0, 4:], Y[1, 1:], Y[2, 6:] = pad, pad, pad  # 4, 1 and 6 real tokens
    total, count = 0.0, 0
    for b in range(3):
        for t in range(6):
            if Y[b, t] != pad:
                total -= math.log(math.exp(logits[b, t, Y[b, t]]) / sum(math.exp(z) for z in logits[b, t]))
                count += 1
    loss = masked_cross_entropy(logits, Y, pad)
    assert float(loss) == pytest.approx(total / 11) and count == 11
    loss_sum, n = masked_cross_entropy(logits, Y, pad, reduction="sum")
    assert float(loss_sum) == pytest.approx(total) and int(n) == 11
    book = (F.cross_entropy(logits.reshape(-1, V_TGT), Y.reshape(-1), reduction="none") * (Y != pad).reshape(-1)).mean()
    assert float(book) == pytest.approx(total / 18)  # the book's average over the padded length differs


def test_bad_inputs_name_what_is_wrong():
    model = small("seq2seq")
    X, valid, dec_X = source_batch()
    with pytest.raises(ConfigError, match="token ids"):
        model(X.float(), dec_X, valid)
    with pytest.raises(ConfigError, match="reduction"):
        masked_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), 0, reduction="none")
    with pytest.raises(ConfigError, match=r"\(B, T, V\)"):
        masked_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long), 0)


PAD, BOS, EOS, NUM_SYMBOLS, LENGTH = 0, 1, 2, 5, 5  # reverse task: vocabulary of 8 = 3 special + 5 symbols


def reverse_batch(n: int, g: torch.Generator):
    """(X, dec_X, X_valid_len, Y) for reversing LENGTH symbols: X = s_1..s_5 <eos>, Y = s_5..s_1 <eos>."""
    seq = torch.randint(3, 3 + NUM_SYMBOLS, (n, LENGTH), generator=g)  # (n, LENGTH)
    eos = torch.full((n, 1), EOS)
    X, Y = torch.cat((seq, eos), dim=1), torch.cat((seq.flip(1), eos), dim=1)  # (n, LENGTH + 1)
    dec_X = torch.cat((torch.full((n, 1), BOS), Y[:, :-1]), dim=1)  # teacher forcing: <bos> y_1 .. y_5
    return X, dec_X, torch.full((n,), LENGTH + 1), Y


@pytest.mark.slow
def test_attention_learns_to_reverse():
    """60 Adam steps (a few seconds): greedy decoding reverses unseen sequences, > 90% of tokens right."""
    torch.manual_seed(0)
    model = create_model("seq2seq-attention", src_vocab_size=8, tgt_vocab_size=8, embed_size=16, num_hiddens=32,
                         num_layers=1, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        X, dec_X, X_valid_len, Y = reverse_batch(64, g)
        loss = masked_cross_entropy(model(X, dec_X, X_valid_len), Y, PAD)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    X, _, X_valid_len, Y = reverse_batch(500, torch.Generator().manual_seed(1))
    rows, weights = greedy_decode(model, X, X_valid_len, BOS, EOS, max_len=LENGTH + 1)
    correct = sum(p == y for row, target in zip(rows, Y[:, :LENGTH].tolist()) for p, y in zip(row, target))
    assert correct / (500 * LENGTH) > 0.9
    assert weights.shape == (500, LENGTH + 1, LENGTH + 1)
