"""The chapter 9-10 RNNs: scratch layers against torch's, the language models, clipping and generation."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from divekit.core.errors import ConfigError
from divekit.models import create_model, list_models
from divekit.models.rnn import (
    RNNLM,
    BiRNNScratch,
    GRUScratch,
    LSTMScratch,
    RNNLMScratch,
    RNNScratch,
    StackedRNNScratch,
    detach_state,
    generate,
    grad_clipping,
)

pytestmark = pytest.mark.usefixtures("one_thread")

T, B, I, H = 5, 3, 4, 6  # steps, batch, input size, hidden size of the layer comparisons


class TinyVocab:
    """The Vocab interface generate() needs: vocab[token or list] -> ids, to_tokens(id or list) -> tokens."""

    def __init__(self, tokens):
        self.idx_to_token = list(tokens)
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self):
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        if isinstance(tokens, (list, tuple)):
            return [self[t] for t in tokens]
        return self.token_to_idx[tokens]

    def to_tokens(self, indices):
        if isinstance(indices, (list, tuple)):
            return [self.idx_to_token[i] for i in indices]
        return self.idx_to_token[indices]


def randomize(module: nn.Module, std: float = 0.5) -> nn.Module:
    """float64 and random weights and biases large enough that every nonlinearity matters."""
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * std)
    return module


def load_layer(rnn: nn.RNNBase, suffix: str, W_xs, W_hs, bs) -> None:
    """Copy scratch gate weights (X W, each (in, H)) into torch's layer `suffix` (W x, gates stacked)."""
    with torch.no_grad():
        getattr(rnn, f"weight_ih_{suffix}").copy_(torch.cat([W.T for W in W_xs]))
        getattr(rnn, f"weight_hh_{suffix}").copy_(torch.cat([W.T for W in W_hs]))
        getattr(rnn, f"bias_ih_{suffix}").copy_(torch.cat(bs))
        getattr(rnn, f"bias_hh_{suffix}").zero_()  # the scratch layers have one bias per gate


def assert_grads_match(rnn: nn.RNNBase, suffix: str, W_xs, W_hs, bs) -> None:
    """The torch layer's weight gradients equal the scratch ones, gate by gate."""
    close = dict(rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(getattr(rnn, f"weight_ih_{suffix}").grad, torch.cat([W.grad.T for W in W_xs]), **close)
    torch.testing.assert_close(getattr(rnn, f"weight_hh_{suffix}").grad, torch.cat([W.grad.T for W in W_hs]), **close)
    torch.testing.assert_close(getattr(rnn, f"bias_ih_{suffix}").grad, torch.cat([b.grad for b in bs]), **close)


def run_both(scratch, ref, scratch_state, ref_state):
    """Run both layers on the same float64 inputs and initial states; check the outputs and the inputs'
    gradients (of a random projection of the outputs) agree. Returns the two final states."""
    X = torch.randn(T, B, I, dtype=torch.float64)
    X1, X2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    out1, state1 = scratch(X1, scratch_state)
    out2, state2 = ref(X2, ref_state)
    torch.testing.assert_close(out1, out2, rtol=1e-10, atol=1e-12)
    G = torch.randn_like(out1)
    (out1 * G).sum().backward(inputs=[X1, *scratch.parameters()])
    (out2 * G).sum().backward(inputs=[X2, *ref.parameters()])
    torch.testing.assert_close(X1.grad, X2.grad, rtol=1e-9, atol=1e-12)
    return state1, state2


def h0(layers: int = 1) -> torch.Tensor:
    return torch.randn(layers, B, H, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# Scratch layers against torch


def test_rnn_scratch_matches_nn_rnn():
    torch.manual_seed(0)
    scratch, ref = randomize(RNNScratch(I, H)), nn.RNN(I, H).double()
    load_layer(ref, "l0", [scratch.W_xh], [scratch.W_hh], [scratch.b_h])
    state = h0()
    H1, H2 = run_both(scratch, ref, state[0], state)
    torch.testing.assert_close(H1, H2[0])
    assert_grads_match(ref, "l0", [scratch.W_xh], [scratch.W_hh], [scratch.b_h])


def test_lstm_scratch_matches_nn_lstm():
    torch.manual_seed(0)
    s, ref = randomize(LSTMScratch(I, H)), nn.LSTM(I, H).double()
    # torch's gate order: i, f, g (the candidate memory), o
    gates = ([s.W_xi, s.W_xf, s.W_xc, s.W_xo], [s.W_hi, s.W_hf, s.W_hc, s.W_ho], [s.b_i, s.b_f, s.b_c, s.b_o])
    load_layer(ref, "l0", *gates)
    h, c = h0(), h0()
    (H1, C1), (H2, C2) = run_both(s, ref, (h[0], c[0]), (h, c))
    torch.testing.assert_close(H1, H2[0])
    torch.testing.assert_close(C1, C2[0])
    assert_grads_match(ref, "l0", *gates)


def gru_pair(diagonal_W_hh: bool, uniform_reset: bool):
    """A GRUScratch and an nn.GRU holding the same weights (torch's gate order r, z, n; b_hn = 0)."""
    s, ref = randomize(GRUScratch(I, H)), nn.GRU(I, H).double()
    with torch.no_grad():
        if diagonal_W_hh:
            s.W_hh.copy_(torch.diag(torch.randn(H, dtype=torch.float64)))
        if uniform_reset:  # R_t = sigmoid(0.3) for every unit and step
            s.W_xr.zero_(), s.W_hr.zero_(), s.b_r.fill_(0.3)
    gates = ([s.W_xr, s.W_xz, s.W_xh], [s.W_hr, s.W_hz, s.W_hh], [s.b_r, s.b_z, s.b_h])
    load_layer(ref, "l0", *gates)
    return s, ref, gates


def test_gru_scratch_matches_nn_gru_where_the_reset_gate_commutes():
    # The book's candidate tanh(X W_xh + (R * H) W_hh + b_h) and torch's tanh(W_in x + b_in + r * (W_hn h))
    # agree for every R when W_hh is diagonal: all weights but the off-diagonal of W_hh are checked here.
    torch.manual_seed(0)
    s, ref, gates = gru_pair(diagonal_W_hh=True, uniform_reset=False)
    state = h0()
    H1, H2 = run_both(s, ref, state[0], state)
    torch.testing.assert_close(H1, H2[0])
    close = dict(rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ref.weight_ih_l0.grad, torch.cat([W.grad.T for W in gates[0]]), **close)
    torch.testing.assert_close(ref.bias_ih_l0.grad, torch.cat([b.grad for b in gates[2]]), **close)
    torch.testing.assert_close(ref.weight_hh_l0.grad[:2 * H], torch.cat([s.W_hr.grad.T, s.W_hz.grad.T]), **close)
    torch.testing.assert_close(ref.weight_hh_l0.grad[2 * H:].diagonal(), s.W_hh.grad.diagonal(), **close)


def test_gru_scratch_matches_nn_gru_with_a_uniform_reset_gate():
    # ...and for a full W_hh when every unit's reset gate is the same number: W_hh's whole gradient is checked here
    # (the reset gate's weights get different gradients, since the functions differ once they move).
    torch.manual_seed(1)
    s, ref, gates = gru_pair(diagonal_W_hh=False, uniform_reset=True)
    state = h0()
    H1, H2 = run_both(s, ref, state[0], state)
    torch.testing.assert_close(H1, H2[0])
    close = dict(rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ref.weight_hh_l0.grad[H:], torch.cat([s.W_hz.grad.T, s.W_hh.grad.T]), **close)
    torch.testing.assert_close(ref.weight_ih_l0.grad[H:], torch.cat([s.W_xz.grad.T, s.W_xh.grad.T]), **close)


def test_gru_scratch_is_the_books_gru_not_torchs():
    # With a full W_hh and a varying reset gate the two variants part: the scratch layer follows the book.
    torch.manual_seed(2)
    s, ref, _ = gru_pair(diagonal_W_hh=False, uniform_reset=False)
    X = torch.randn(T, B, I, dtype=torch.float64)
    assert not torch.allclose(s(X)[0], ref(X)[0], atol=1e-3)


def test_stacked_rnn_scratch_matches_two_layer_nn_rnn():
    torch.manual_seed(0)
    s, ref = randomize(StackedRNNScratch(I, H, num_layers=2)), nn.RNN(I, H, num_layers=2).double()
    for l, layer in enumerate(s.rnns):
        load_layer(ref, f"l{l}", [layer.W_xh], [layer.W_hh], [layer.b_h])
    state = h0(2)
    Hs1, Hs2 = run_both(s, ref, list(state.unbind(0)), state)
    assert isinstance(Hs1, list) and len(Hs1) == 2
    torch.testing.assert_close(torch.stack(Hs1), Hs2)
    for l, layer in enumerate(s.rnns):
        assert_grads_match(ref, f"l{l}", [layer.W_xh], [layer.W_hh], [layer.b_h])


def test_birnn_scratch_matches_bidirectional_nn_rnn():
    torch.manual_seed(0)
    s, ref = randomize(BiRNNScratch(I, H)), nn.RNN(I, H, bidirectional=True).double()
    load_layer(ref, "l0", [s.f_rnn.W_xh], [s.f_rnn.W_hh], [s.f_rnn.b_h])
    load_layer(ref, "l0_reverse", [s.b_rnn.W_xh], [s.b_rnn.W_hh], [s.b_rnn.b_h])
    state = h0(2)
    (f_H, b_H), H2 = run_both(s, ref, (state[0], state[1]), state)
    torch.testing.assert_close(torch.stack([f_H, b_H]), H2)
    assert_grads_match(ref, "l0", [s.f_rnn.W_xh], [s.f_rnn.W_hh], [s.f_rnn.b_h])
    assert_grads_match(ref, "l0_reverse", [s.b_rnn.W_xh], [s.b_rnn.W_hh], [s.b_rnn.b_h])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_scratch_and_concise_language_models_agree(bidirectional):
    torch.manual_seed(0)
    V = 7
    layer = BiRNNScratch(V, H) if bidirectional else RNNScratch(V, H)
    scratch = randomize(RNNLMScratch(layer, V))
    concise = RNNLM(nn.RNN(V, H, bidirectional=bidirectional), V).double()
    for rnn, suffix in [(layer.f_rnn, "l0"), (layer.b_rnn, "l0_reverse")] if bidirectional else [(layer, "l0")]:
        load_layer(concise.rnn, suffix, [rnn.W_xh], [rnn.W_hh], [rnn.b_h])
    with torch.no_grad():
        concise.linear.weight.copy_(scratch.W_hq.T)
        concise.linear.bias.copy_(scratch.b_q)
    X = torch.randint(0, V, (B, T))
    logits1, state1 = scratch(X)
    logits2, state2 = concise(X)
    assert logits1.shape == (B, T, V)
    torch.testing.assert_close(logits1, logits2)
    torch.testing.assert_close(torch.stack(state1) if bidirectional else state1, state2 if bidirectional else state2[0])


# ----------------------------------------------------------------------------------------------
# Every registered model


def leaves(state):
    return [state] if isinstance(state, torch.Tensor) else [t for s in state for t in leaves(s)]


@pytest.mark.parametrize("name", list_models(tag="rnn"))
def test_registered_language_model(name):
    torch.manual_seed(0)
    V, T_ = 28, 7
    model = create_model(name, context={"vocab_size": V, "num_classes": 10})
    X = torch.randint(0, V, (3, 2 * T_))
    X1, X2 = X[:, :T_], X[:, T_:]

    logits, state = model(X1)
    assert logits.shape == (3, T_, V)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits.reshape(-1, V), X2.reshape(-1)).backward(retain_graph=True)
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname} got no usable gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} got a zero gradient"

    # passing the state back continues the sequence: two halves give the logits of the whole
    logits2, state2 = model(X2, state)
    assert logits2.shape == (3, T_, V)
    assert type(state2) is type(state)
    if not model.rnn.bidirectional:  # a bidirectional model's outputs depend on the steps after them
        torch.testing.assert_close(logits2, model(X)[0][:, T_:], rtol=1e-5, atol=1e-6)

    # after detach_state, backpropagation stops at the batch boundary: the first half's graph is not needed
    detached = detach_state(state)
    assert all(s.grad_fn is not None for s in leaves(state))
    assert all(s.grad_fn is None and not s.requires_grad for s in leaves(detached))
    model.zero_grad()
    logits.sum().backward()  # frees the first half's graph
    model(X2, detached)[0].sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        model(X2, state)[0].sum().backward()


def test_registered_models_take_vocab_size_and_share_training_defaults():
    from divekit.models import MODELS

    names = list_models(tag="rnn")
    assert set(names) == {"rnn-scratch", "gru-scratch", "lstm-scratch", "deep-rnn-scratch", "birnn-scratch",
                          "rnn", "gru", "lstm", "deep-gru", "deep-lstm", "bigru"}
    for name in names:
        assert MODELS.get(name).defaults["data"] == "time-machine"
    assert create_model("deep-gru", context={"vocab_size": 5}).rnn.num_layers == 2
    assert create_model("bigru", context={"vocab_size": 5}).linear.in_features == 2 * 32
    assert isinstance(create_model("deep-rnn-scratch", context={"vocab_size": 5}).rnn, StackedRNNScratch)
    embedded = create_model("lstm", context={"vocab_size": 5}, embedding_dim=3, dropout=0.5)
    assert embedded(torch.zeros(2, 4, dtype=torch.long))[0].shape == (2, 4, 5)
    assert embedded.rnn.input_size == 3


def test_bad_inputs_name_what_is_wrong():
    with pytest.raises(ConfigError, match="input_size"):
        RNNLM(nn.GRU(4, 8), vocab_size=5)
    with pytest.raises(ConfigError, match="batch_first"):
        RNNLM(nn.GRU(5, 8, batch_first=True), vocab_size=5)
    with pytest.raises(ConfigError, match="num_inputs"):
        RNNLMScratch(RNNScratch(4, 8), vocab_size=5)
    with pytest.raises(ConfigError, match=r"\(batch, steps\)"):
        create_model("gru", context={"vocab_size": 5})(torch.zeros(2, 3, 5))


def test_detach_state_keeps_the_structure():
    a = torch.ones(2, requires_grad=True) * 2
    state = (a, [a + 1, a + 2])
    out = detach_state(state)
    assert isinstance(out, tuple) and isinstance(out[1], list)
    assert all(not t.requires_grad for t in leaves(out))
    torch.testing.assert_close(out[1][1], torch.full((2,), 4.0))
    assert detach_state(None) is None


# ----------------------------------------------------------------------------------------------
# Gradient clipping


@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clipped, and a norm already below max_norm
def test_grad_clipping_matches_clip_grad_norm(max_norm):
    torch.manual_seed(0)
    model = create_model("gru-scratch", context={"vocab_size": 5})
    nn.init.normal_(model.W_hq)
    model(torch.randint(0, 5, (2, 6)))[0].pow(2).sum().backward()
    model.b_q.grad = None  # parameters without a gradient are skipped
    before = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    ref_params = [nn.Parameter(torch.zeros_like(g)) for g in before]  # the same gradients, for torch to clip
    for p, g in zip(ref_params, before):
        p.grad = g.clone()

    norm = grad_clipping(model.parameters(), max_norm)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref_params, max_norm)

    after = [p.grad for p in model.parameters() if p.grad is not None]
    assert norm == pytest.approx(float(ref_norm), rel=1e-6)
    assert norm == pytest.approx(float(torch.cat([g.flatten() for g in before]).norm()), rel=1e-6)
    for g, r in zip(after, ref_params):
        torch.testing.assert_close(g, r.grad, rtol=1e-5, atol=0)
    if max_norm > norm:
        assert all(torch.equal(g, b) for g, b in zip(after, before))
    else:
        assert float(torch.cat([g.flatten() for g in after]).norm()) == pytest.approx(max_norm, rel=1e-5)


# ----------------------------------------------------------------------------------------------
# Learning and generation


@pytest.fixture(scope="module")
def abac_model(one_thread):
    """A scratch GRU language model trained on "abacabac...", where the letter after an "a" depends on the
    one before it: only a model that keeps a state predicts it."""
    torch.manual_seed(0)
    model = create_model("gru-scratch", context={"vocab_size": 3}, num_hiddens=16)
    ids = torch.tensor([0, 1, 0, 2]).repeat(4)  # a b a c a b a c ...
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        rows = ids[torch.randint(0, 4, (8, 1)) + torch.arange(9)]  # (8, 9): windows at random phases
        X, Y = rows[:, :-1], rows[:, 1:]  # (8, 8) each
        logits, _ = model(X)
        # the first step is a guess for rows that start with "a" (b or c?); the loss counts the rest
        loss = F.cross_entropy(logits[:, 1:].reshape(-1, 3), Y[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        grad_clipping(model.parameters(), 1.0)
        optimizer.step()
    return model, loss.item()


def test_gru_scratch_learns_a_sequence_that_needs_memory(abac_model):
    model, loss = abac_model
    assert loss < 0.01
    vocab = TinyVocab("abc")
    assert generate(model, vocab, "ab", 8) == "abacabacab"
    assert generate(model, vocab, "ac", 6) == "acabacab"
    assert generate(model, vocab, "ca", 3) == "cabac"


def test_generate_by_words_and_with_temperature(abac_model):
    model, _ = abac_model
    words = TinyVocab(["the", "cat", "sat"])  # ids 0, 1, 2 stand for a, b, c
    assert generate(model, words, " the  cat ", 4, level="word") == "the cat the sat the cat"

    def sample(seed, temperature):
        return generate(model, TinyVocab("abc"), "ab", 30, temperature=temperature,
                        generator=torch.Generator().manual_seed(seed))

    assert sample(0, 1.0) == sample(0, 1.0)
    assert sample(0, 0.05) == generate(model, TinyVocab("abc"), "ab", 30)  # a cold sample is the argmax
    assert sample(0, 50.0) != sample(1, 50.0)  # a hot one is nearly uniform: two seeds part


def test_generate_runs_in_eval_mode_without_grad_and_restores_the_mode():
    model = create_model("lstm", context={"vocab_size": 3}, dropout=0.5)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append((m.training, torch.is_grad_enabled())))
    model.train()
    out = generate(model, TinyVocab("abc"), "abc", 5)
    assert len(out) == 8 and out.startswith("abc")
    assert seen and all(s == (False, False) for s in seen)
    assert len(seen) == 5  # the prefix in one call, then one call per prediction after the first
    assert model.training
    model.eval()
    generate(model, TinyVocab("abc"), "a", 2)
    assert not model.training


def test_generate_needs_a_prefix():
    model = create_model("rnn", context={"vocab_size": 3})
    with pytest.raises(ConfigError, match="prefix"):
        generate(model, TinyVocab("abc"), "", 5)
    with pytest.raises(ConfigError, match="prefix"):
        generate(model, TinyVocab("abc"), "   ", 5, level="word")
    with pytest.raises(ConfigError, match="level"):
        generate(model, TinyVocab("abc"), "a", 5, level="byte")
