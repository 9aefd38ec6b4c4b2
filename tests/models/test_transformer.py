"""The Transformer (book 11.7): shapes, the decoder's key-value cache (step-by-step decoding equals
the teacher-forced pass), causality, reorder_state for beam search, gradients, and a tiny task
learned on CPU."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from divekit.models import MODELS, create_model, list_models
from divekit.models.transformer import (
    TRANSLATION_DEFAULTS,
    AddNorm,
    PositionWiseFFN,
    Transformer,
    TransformerDecoder,
    TransformerEncoder,
    TransformerEncoderBlock,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SRC_VOCAB, TGT_VOCAB, HIDDENS, HEADS, BLKS = 11, 13, 16, 4, 2


def small_model(dropout: float = 0.1) -> Transformer:
    torch.manual_seed(0)
    return Transformer(SRC_VOCAB, TGT_VOCAB, num_hiddens=HIDDENS, ffn_num_hiddens=32, num_heads=HEADS,
                       num_blks=BLKS, dropout=dropout)


def batch(B: int = 3, T_src: int = 6, T: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, SRC_VOCAB, (B, T_src), generator=g)
    dec_X = torch.randint(0, TGT_VOCAB, (B, T), generator=g)
    valid_lens = torch.tensor([T_src, 4, 2, 5, 1][:B])
    return X, dec_X, valid_lens


def decode(model, X, valid_lens, dec_X, chunks):
    """Decoder logits for dec_X fed in consecutive chunks of the given sizes, from a fresh state."""
    state = model.decoder.init_state(model.encoder(X, valid_lens), valid_lens)
    outputs, start = [], 0
    for size in chunks:
        logits, state = model.decoder(dec_X[:, start : start + size], state)
        outputs.append(logits)
        start += size
    return torch.cat(outputs, dim=1), state


def test_blocks_keep_shapes():
    assert PositionWiseFFN(4, 8, 6)(torch.ones(2, 3, 4)).shape == (2, 3, 6)
    add_norm = AddNorm(4, 0.5).eval()
    out = add_norm(torch.ones(2, 3, 4), torch.randn(2, 3, 4))
    assert out.shape == (2, 3, 4) and torch.allclose(out.mean(-1), torch.zeros(2, 3), atol=1e-6)
    blk = TransformerEncoderBlock(24, 48, 8, 0.5).eval()
    assert blk(torch.ones(2, 100, 24), torch.tensor([3, 2])).shape == (2, 100, 24)  # the book's example
    encoder = TransformerEncoder(200, 24, 48, 8, 2, 0.5).eval()
    assert encoder(torch.ones(2, 100, dtype=torch.long), torch.tensor([3, 2])).shape == (2, 100, 24)


def test_shapes_and_attention_weights():
    model = small_model().eval()
    X, dec_X, valid_lens = batch()
    B, T_src, T = 3, X.shape[1], dec_X.shape[1]
    logits = model(X, dec_X, valid_lens)
    assert logits.shape == (B, T, TGT_VOCAB)
    for w in model.encoder.attention_weights:
        assert w.shape == (B * HEADS, T_src, T_src)
        assert (w.reshape(B, HEADS, T_src, T_src)[2, :, :, 2:] == 0).all()  # row 2 has 2 valid source tokens
    self_attention, enc_dec_attention = model.decoder.attention_weights
    assert len(self_attention) == len(enc_dec_attention) == BLKS
    for w in self_attention:
        assert w.shape == (B * HEADS, T, T)
        assert (w.triu(diagonal=1) == 0).all()  # causal: no weight on later positions
    for w in enc_dec_attention:
        assert w.shape == (B * HEADS, T, T_src)
        assert (w.reshape(B, HEADS, T, T_src)[1, :, :, 4:] == 0).all()
    # after 3 cached steps, one new step attends to 4 positions; the earlier weights are kept
    _, state = decode(model, X, valid_lens, dec_X, [3])
    earlier = model.decoder.attention_weights
    _, state = model.decoder(dec_X[:, 3:4], state)
    assert model.decoder.attention_weights[0][0].shape == (B * HEADS, 1, 4)
    assert earlier[0][0].shape == (B * HEADS, 3, 3)
    assert [kv.shape for kv in state[2]] == [(B, 4, HIDDENS)] * BLKS


@pytest.mark.parametrize("chunks", [[1] * 7, [3, 4], [2, 1, 4]])
def test_incremental_decoding_equals_teacher_forcing(chunks):
    model = small_model().eval()
    X, dec_X, valid_lens = batch()
    with torch.no_grad():
        full = model(X, dec_X, valid_lens)
        stepwise, state = decode(model, X, valid_lens, dec_X, chunks)
    assert torch.allclose(stepwise, full, atol=1e-5), float((stepwise - full).abs().max())
    assert [kv.shape[1] for kv in state[2]] == [7] * BLKS


def test_forward_leaves_the_state_passed_in_unchanged():
    model = small_model().eval()
    X, dec_X, valid_lens = batch()
    state = model.decoder.init_state(model.encoder(X, valid_lens), valid_lens)
    first, _ = model.decoder(dec_X[:, :2], state)
    again, _ = model.decoder(dec_X[:, :2], state)  # the same state, so the same positions
    assert state[2] == [None] * BLKS and torch.equal(first, again)


@pytest.mark.parametrize("training", [True, False])
def test_decoder_never_sees_future_tokens(training):
    model = small_model(dropout=0.0).train(training)
    X, dec_X, valid_lens = batch()
    changed = dec_X.clone()
    changed[:, 4] = (changed[:, 4] + 1) % TGT_VOCAB
    with torch.no_grad():
        a, b = model(X, dec_X, valid_lens), model(X, changed, valid_lens)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)


@pytest.mark.parametrize("with_lens", [True, False])
def test_reorder_state_selects_rows(with_lens):
    model = small_model().eval()
    X, dec_X, valid_lens = batch(B=4)
    valid_lens = valid_lens if with_lens else None
    index = torch.tensor([2, 0, 0, 1, 3])  # beam search keeps some rows, duplicates others
    with torch.no_grad():
        _, state = decode(model, X, valid_lens, dec_X, [3])
        state = model.decoder.reorder_state(state, index)
        reordered, _ = model.decoder(dec_X[index, 3:5], state)
        lens = None if valid_lens is None else valid_lens[index]
        expected, _ = decode(model, X[index], lens, dec_X[index], [3, 2])
    assert state[0].shape[0] == 5 and all(kv.shape[0] == 5 for kv in state[2])
    assert torch.allclose(reordered, expected[:, 3:], atol=1e-5)


def test_every_parameter_gets_a_gradient():
    model = small_model().train()
    X, dec_X, valid_lens = batch()
    logits = model(X, dec_X, valid_lens)
    F.cross_entropy(logits.reshape(-1, TGT_VOCAB), dec_X.reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_registered_with_the_books_sizes():
    assert "transformer" in list_models(tag="seq2seq")
    assert MODELS.get("transformer").defaults == {**TRANSLATION_DEFAULTS, "lr": 0.0015}
    model = create_model("transformer", context={"src_vocab_size": 20, "tgt_vocab_size": 30, "level": "word"},
                         num_blks=1)
    assert isinstance(model.decoder, TransformerDecoder) and len(model.encoder.blks) == 1
    assert model.encoder.embedding.weight.shape == (20, 256) and model.decoder.dense.out_features == 30
    assert model.encoder.blks[0].ffn.dense1.out_features == 64
    assert model.encoder.blks[0].attention.num_heads == 4


def test_learns_to_reverse_sequences():
    """Reverse 5 tokens drawn from 6 symbols (vocab 8 with <pad>=0 and <bos>=1) in 200 Adam steps
    (about 4 s on one idle core), then decode greedily one token at a time through the cache."""
    bos, length, B = 1, 5, 64
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = Transformer(8, 8, num_hiddens=32, ffn_num_hiddens=64, num_heads=4, num_blks=2, dropout=0.0)
    # Embeddings with std 1/sqrt(num_hiddens), as in the Transformer paper, so that embedding *
    # sqrt(num_hiddens) has unit scale like the positional encoding. With torch's N(0, 1) default
    # (the book's) the positions are drowned out and this task takes two to three times as many steps.
    for embedding in (model.encoder.embedding, model.decoder.embedding):
        nn.init.normal_(embedding.weight, std=32**-0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005, foreach=True)
    for _ in range(200):
        X = torch.randint(2, 8, (B, length), generator=g)
        Y = X.flip(1)
        dec_X = torch.cat([torch.full((B, 1), bos), Y[:, :-1]], dim=1)  # teacher forcing: <bos> y_1 .. y_4
        loss = F.cross_entropy(model(X, dec_X).reshape(-1, 8), Y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.eval()
    X = torch.randint(2, 8, (200, length), generator=g)
    with torch.no_grad():
        state = model.decoder.init_state(model.encoder(X), None)
        token, predictions = torch.full((200, 1), bos), []
        for _ in range(length):
            logits, state = model.decoder(token, state)
            token = logits.argmax(-1)  # (200, 1)
            predictions.append(token)
    accuracy = float((torch.cat(predictions, 1) == X.flip(1)).float().mean())
    assert accuracy > 0.9, accuracy
