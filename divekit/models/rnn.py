"""Chapters 9-10: recurrent neural networks and language models, from scratch and concise.

From scratch, as in the book (each layer takes inputs (T, B, num_inputs), time first, and returns
the outputs of every step stacked as (T, B, H) with the final state):

    RNNScratch         H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)                       (9.5)
    LSTMScratch        input, forget and output gates and a memory cell; state (H, C)  (10.1)
    GRUScratch         reset and update gates; state H                                 (10.2)
    StackedRNNScratch  RNNScratch layers, each fed the outputs of the one below         (10.3)
    BiRNNScratch       one RNNScratch forward in time, one backward; outputs 2H wide   (10.4)
    RNNLMScratch       one-hot tokens -> a scratch rnn -> O_t = H_t W_hq + b_q          (9.5)

Concise: `RNNLM` wraps an nn.RNN, nn.GRU or nn.LSTM (9.6, 10.1-10.4). Both language models map
token ids X (B, T) to next-token logits (B, T, V) and return the final state, which the caller may
pass back (detached with `detach_state`) to continue a sequence. `grad_clipping` is the book's
clipping by global norm and `generate` its `predict`.

The book's GRU (Cho et al., 2014) applies the reset gate to the state before the recurrent
weights, tanh(X W_xh + (R * H) W_hh + b_h), while torch's nn.GRU applies it after them,
tanh(W_in x + b_in + r * (W_hn h + b_hn)). The two compute different functions (they agree only
when W_hh is diagonal, or when every unit's reset gate is the same), so `gru-scratch` and `gru`
are different models, not two implementations of one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ConfigError
from .registry import register_model

State = torch.Tensor | tuple | list


def _gate_params(num_inputs: int, num_hiddens: int, sigma: float) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
    """(W_x, W_h, b) of one gate or of a candidate: W_x (num_inputs, H), W_h (H, H) ~ N(0, sigma^2), b = 0."""
    return (nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma),
            nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma),
            nn.Parameter(torch.zeros(num_hiddens)))


def _zeros_state(inputs: torch.Tensor, num_hiddens: int) -> torch.Tensor:
    return inputs.new_zeros((inputs.shape[1], num_hiddens))  # (B, H)


class RNNScratch(nn.Module):
    """A vanilla RNN layer by hand (book 9.5): H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)."""

    bidirectional = False

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.W_xh, self.W_hh, self.b_h = _gate_params(num_inputs, num_hiddens, sigma)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (T, B, num_inputs), state (B, H) or None for zeros -> (outputs (T, B, H), state (B, H))."""
        H = _zeros_state(inputs, self.num_hiddens) if state is None else state
        outputs = []
        for X in inputs:  # X: (B, num_inputs)
            H = torch.tanh(X @ self.W_xh + H @ self.W_hh + self.b_h)  # (B, H)
            outputs.append(H)
        return torch.stack(outputs), H


class GRUScratch(nn.Module):
    """A gated recurrent unit by hand (book 10.2).

    R_t = sigmoid(X_t W_xr + H_{t-1} W_hr + b_r)                (reset gate)
    Z_t = sigmoid(X_t W_xz + H_{t-1} W_hz + b_z)                (update gate)
    H~_t = tanh(X_t W_xh + (R_t * H_{t-1}) W_hh + b_h)          (candidate state)
    H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t
    """

    bidirectional = False

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.W_xz, self.W_hz, self.b_z = _gate_params(num_inputs, num_hiddens, sigma)
        self.W_xr, self.W_hr, self.b_r = _gate_params(num_inputs, num_hiddens, sigma)
        self.W_xh, self.W_hh, self.b_h = _gate_params(num_inputs, num_hiddens, sigma)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (T, B, num_inputs), state (B, H) or None for zeros -> (outputs (T, B, H), state (B, H))."""
        H = _zeros_state(inputs, self.num_hiddens) if state is None else state
        outputs = []
        for X in inputs:  # X: (B, num_inputs)
            Z = torch.sigmoid(X @ self.W_xz + H @ self.W_hz + self.b_z)
            R = torch.sigmoid(X @ self.W_xr + H @ self.W_hr + self.b_r)
            H_tilde = torch.tanh(X @ self.W_xh + (R * H) @ self.W_hh + self.b_h)
            H = Z * H + (1 - Z) * H_tilde  # (B, H)
            outputs.append(H)
        return torch.stack(outputs), H


class LSTMScratch(nn.Module):
    """A long short-term memory layer by hand (book 10.1).

    I_t, F_t, O_t = sigmoid(X_t W_x* + H_{t-1} W_h* + b_*)      (input, forget, output gates)
    C~_t = tanh(X_t W_xc + H_{t-1} W_hc + b_c)                  (candidate memory)
    C_t = F_t * C_{t-1} + I_t * C~_t,   H_t = O_t * tanh(C_t)
    """

    bidirectional = False

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.W_xi, self.W_hi, self.b_i = _gate_params(num_inputs, num_hiddens, sigma)
        self.W_xf, self.W_hf, self.b_f = _gate_params(num_inputs, num_hiddens, sigma)
        self.W_xo, self.W_ho, self.b_o = _gate_params(num_inputs, num_hiddens, sigma)
        self.W_xc, self.W_hc, self.b_c = _gate_params(num_inputs, num_hiddens, sigma)

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """inputs (T, B, num_inputs), state (H, C) each (B, H) or None -> (outputs (T, B, H), (H, C))."""
        if state is None:
            H = C = _zeros_state(inputs, self.num_hiddens)
        else:
            H, C = state
        outputs = []
        for X in inputs:  # X: (B, num_inputs)
            I = torch.sigmoid(X @ self.W_xi + H @ self.W_hi + self.b_i)
            F_ = torch.sigmoid(X @ self.W_xf + H @ self.W_hf + self.b_f)  # F is torch.nn.functional here
            O = torch.sigmoid(X @ self.W_xo + H @ self.W_ho + self.b_o)
            C_tilde = torch.tanh(X @ self.W_xc + H @ self.W_hc + self.b_c)
            C = F_ * C + I * C_tilde  # (B, H)
            H = O * torch.tanh(C)  # (B, H)
            outputs.append(H)
        return torch.stack(outputs), (H, C)


class StackedRNNScratch(nn.Module):
    """A deep RNN (book 10.3): num_layers RNNScratch layers, layer l > 0 reading the outputs of layer l - 1.

    The state is a list with one (B, H) tensor per layer.
    """

    bidirectional = False

    def __init__(self, num_inputs: int, num_hiddens: int, num_layers: int, sigma: float = 0.01):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"a stacked RNN needs num_layers >= 1, got {num_layers}")
        self.num_inputs, self.num_hiddens, self.num_layers, self.sigma = num_inputs, num_hiddens, num_layers, sigma
        self.rnns = nn.ModuleList(
            RNNScratch(num_inputs if i == 0 else num_hiddens, num_hiddens, sigma) for i in range(num_layers)
        )

    def forward(self, inputs: torch.Tensor, state: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """inputs (T, B, num_inputs), state [num_layers x (B, H)] or None -> (outputs (T, B, H), state)."""
        Hs = [None] * self.num_layers if state is None else state
        outputs, new_Hs = inputs, []
        for rnn, H in zip(self.rnns, Hs):
            outputs, H = rnn(outputs, H)  # (T, B, H)
            new_Hs.append(H)
        return outputs, new_Hs


class BiRNNScratch(nn.Module):
    """A bidirectional RNN (book 10.4): one RNNScratch reads the sequence forward, another backward.

    The output at step t concatenates both directions' hidden states at t, so it is 2H wide; the
    state is the pair (forward H, backward H), each (B, H). `num_hiddens` stays H per direction, as
    nn.RNN's hidden_size does (the book doubles it instead).
    """

    bidirectional = True

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.f_rnn = RNNScratch(num_inputs, num_hiddens, sigma)
        self.b_rnn = RNNScratch(num_inputs, num_hiddens, sigma)

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """inputs (T, B, num_inputs), state (f_H, b_H) or None -> (outputs (T, B, 2H), (f_H, b_H))."""
        f_H, b_H = (None, None) if state is None else state
        f_outputs, f_H = self.f_rnn(inputs, f_H)  # (T, B, H)
        b_outputs, b_H = self.b_rnn(inputs.flip(0), b_H)  # (T, B, H), step t holds input T-1-t
        return torch.cat((f_outputs, b_outputs.flip(0)), dim=-1), (f_H, b_H)  # (T, B, 2H)


def _num_outputs(rnn: nn.Module) -> int:
    """Width of an rnn's outputs: hidden size, doubled when bidirectional (scratch layers and nn.RNNBase)."""
    num_hiddens = rnn.num_hiddens if hasattr(rnn, "num_hiddens") else rnn.hidden_size
    return num_hiddens * (2 if rnn.bidirectional else 1)


def _check_tokens(X: torch.Tensor, model: str) -> None:
    if X.dim() != 2 or X.dtype.is_floating_point:
        raise ConfigError(f"{model} takes token ids of shape (batch, steps) and an integer dtype, "
                          f"got {tuple(X.shape)} {X.dtype}")


class RNNLMScratch(nn.Module):
    """A language model from scratch (book 9.5): one-hot tokens, a scratch rnn, O_t = H_t W_hq + b_q.

    Works with every scratch layer above; the output layer reads 2H features from a BiRNNScratch.
    """

    def __init__(self, rnn: nn.Module, vocab_size: int):
        super().__init__()
        if rnn.num_inputs != vocab_size:
            raise ConfigError(f"RNNLMScratch feeds one-hot tokens, so the rnn needs num_inputs = vocab_size "
                              f"= {vocab_size}, got {rnn.num_inputs}")
        self.rnn, self.vocab_size = rnn, vocab_size
        self.W_hq = nn.Parameter(torch.randn(_num_outputs(rnn), vocab_size) * rnn.sigma)
        self.b_q = nn.Parameter(torch.zeros(vocab_size))

    def one_hot(self, X: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> one-hot vectors (T, B, V), time first for the rnn."""
        return F.one_hot(X.T, self.vocab_size).to(self.W_hq.dtype)

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        """O_t = H_t W_hq + b_q at every step: (T, B, H) -> logits (B, T, V)."""
        return (rnn_outputs @ self.W_hq + self.b_q).transpose(0, 1)

    def forward(self, X: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """X (B, T) token ids -> (logits (B, T, V), the rnn's final state)."""
        _check_tokens(X, "RNNLMScratch")
        rnn_outputs, state = self.rnn(self.one_hot(X), state)  # (T, B, H)
        return self.output_layer(rnn_outputs), state


class RNNLM(nn.Module):
    """A concise language model (book 9.6): tokens -> nn.RNN / nn.GRU / nn.LSTM -> nn.Linear.

    Tokens enter one-hot, as in the book, or through an nn.Embedding(vocab_size, embedding_dim)
    when `embedding_dim` is given; the rnn's input_size must match. The rnn runs time first
    (batch_first=False). `dropout` is applied to the rnn's outputs before the output layer.
    The state is the rnn's: (num_layers * num_directions, B, H), a pair (h, c) for nn.LSTM.
    """

    def __init__(self, rnn: nn.RNNBase, vocab_size: int, embedding_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        num_inputs = vocab_size if embedding_dim is None else embedding_dim
        if rnn.input_size != num_inputs:
            what = "vocab_size (one-hot tokens)" if embedding_dim is None else "embedding_dim"
            raise ConfigError(f"RNNLM needs an rnn with input_size = {what} = {num_inputs}, got {rnn.input_size}")
        if rnn.batch_first:
            raise ConfigError("RNNLM runs its rnn time first: build it with batch_first=False")
        self.rnn, self.vocab_size = rnn, vocab_size
        self.embedding = None if embedding_dim is None else nn.Embedding(vocab_size, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(_num_outputs(rnn), vocab_size)

    def forward(self, X: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """X (B, T) token ids -> (logits (B, T, V), the rnn's final state)."""
        _check_tokens(X, "RNNLM")
        if self.embedding is None:
            inputs = F.one_hot(X.T, self.vocab_size).to(self.linear.weight.dtype)  # (T, B, V)
        else:
            inputs = self.embedding(X.T)  # (T, B, E)
        outputs, state = self.rnn(inputs, state)  # (T, B, H * num_directions)
        return self.linear(self.dropout(outputs)).transpose(0, 1), state  # (B, T, V)


def detach_state(state: State | None) -> State | None:
    """A recurrent state (a tensor, or a tuple/list of them, nested) cut from its autograd graph.

    Carrying the state from one minibatch to the next without detaching it would backpropagate
    through every earlier batch (truncated backpropagation through time stops at the boundary).
    """
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"a recurrent state is a tensor or a tuple/list of them, got {type(state).__name__}")


@torch.no_grad()
def grad_clipping(parameters, max_norm: float) -> float:
    """Clip gradients by their global L2 norm (book 9.5.3); returns the norm before clipping.

    With g all gradients as one vector, g <- min(1, max_norm / ||g||) g. Parameters without a
    gradient are skipped. Agrees with torch.nn.utils.clip_grad_norm_ (which adds 1e-6 to the norm).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = float(torch.sqrt(sum((g ** 2).sum() for g in grads)))  # ||g||, one host sync
    if norm > max_norm:
        for g in grads:
            g.mul_(max_norm / norm)
    return norm


def _next_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Logits (1, V) -> the next token id (1, 1): the argmax, or a sample from softmax(logits / temperature)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    P = F.softmax(logits.float() / temperature, dim=-1)  # (1, V)
    if generator is not None:
        # sample where the generator lives, so a seeded CPU generator gives the same text on any device
        return torch.multinomial(P.to(generator.device), 1, generator=generator).to(logits.device)
    return torch.multinomial(P, 1)


def generate(model: nn.Module, vocab, prefix: str, num_preds: int, *, level: str = "char",
             temperature: float = 0.0, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> str:
    """The book's predict (9.5.4): `prefix` followed by `num_preds` tokens from a language model.

    The prefix is split into characters (level "char") or at whitespace (level "word"), run
    through the model to warm up its state, and each prediction is then fed back as the next
    input. Temperature 0 takes the most likely token; a positive temperature samples from
    softmax(logits / temperature) with `generator`. `vocab` maps tokens to ids with `vocab[tokens]`
    and back with `vocab.to_tokens(ids)`. Tokens are joined with "" (char) or " " (word).

    The model, any `(X, state) -> (logits, state)` language model, runs in eval mode without
    gradients and gets its previous mode back. It reads the whole prefix in one call; for a causal
    model that is the same as one token at a time.
    """
    if level not in ("char", "word"):
        raise ConfigError(f"level must be 'char' or 'word', got {level!r}")
    if num_preds < 0 or temperature < 0:
        raise ConfigError(f"num_preds and temperature must be >= 0, got {num_preds} and {temperature}")
    tokens = list(prefix) if level == "char" else prefix.split()
    if not tokens:
        raise ConfigError("generate needs a non-empty prefix to start from (the model predicts the token after it)")
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            X = torch.tensor([vocab[tokens]], device=device)  # (1, len(prefix))
            logits, state = model(X)  # warm-up: (1, len(prefix), V)
            preds = []
            for i in range(num_preds):
                Y = _next_token(logits[:, -1], temperature, generator)  # (1, 1)
                preds.append(Y)
                if i + 1 < num_preds:
                    logits, state = model(Y, state)  # (1, 1, V)
            ids = torch.cat(preds, dim=1)[0].tolist() if preds else []  # one host sync, at the end
    finally:
        model.train(was_training)
    return ("" if level == "char" else " ").join(tokens + list(vocab.to_tokens(ids)))


# ----------------------------------------------------------------------------------------------
# Registered models. Each takes vocab_size from the dataset; the training defaults are shared.

# The book's character-level setting: minibatch SGD with gradient clipping. Gated and deep RNNs
# learn faster with a larger step (measured on The Time Machine, docs/RESULTS.md).
RNN_DEFAULTS = {"data": "time-machine", "optimizer": "sgd", "grad_clip": 1.0, "epochs": 20, "batch_size": 32, "lr": 1.0}
GATED_DEFAULTS = {**RNN_DEFAULTS, "lr": 4.0}
DEEP_DEFAULTS = {**RNN_DEFAULTS, "lr": 2.0}
_TAGS = ("text", "rnn")
_SCRATCH_TAGS = (*_TAGS, "scratch")


@register_model("rnn-scratch", defaults=RNN_DEFAULTS, tags=_SCRATCH_TAGS)
def rnn_scratch(vocab_size: int, num_hiddens: int = 32):
    """RNN language model from scratch (book 9.5)."""
    return RNNLMScratch(RNNScratch(vocab_size, num_hiddens), vocab_size)


@register_model("gru-scratch", defaults=GATED_DEFAULTS, tags=_SCRATCH_TAGS)
def gru_scratch(vocab_size: int, num_hiddens: int = 32):
    """GRU language model from scratch (book 10.2)."""
    return RNNLMScratch(GRUScratch(vocab_size, num_hiddens), vocab_size)


@register_model("lstm-scratch", defaults=GATED_DEFAULTS, tags=_SCRATCH_TAGS)
def lstm_scratch(vocab_size: int, num_hiddens: int = 32):
    """LSTM language model from scratch (book 10.1)."""
    return RNNLMScratch(LSTMScratch(vocab_size, num_hiddens), vocab_size)


@register_model("deep-rnn-scratch", defaults=RNN_DEFAULTS, tags=_SCRATCH_TAGS)
def deep_rnn_scratch(vocab_size: int, num_hiddens: int = 32, num_layers: int = 2):
    """Deep (stacked) RNN language model from scratch (book 10.3)."""
    return RNNLMScratch(StackedRNNScratch(vocab_size, num_hiddens, num_layers), vocab_size)


@register_model("birnn-scratch", defaults=RNN_DEFAULTS, tags=_SCRATCH_TAGS)
def birnn_scratch(vocab_size: int, num_hiddens: int = 32):
    """Bidirectional RNN from scratch (book 10.4); it sees the future, so it is no real language model."""
    return RNNLMScratch(BiRNNScratch(vocab_size, num_hiddens), vocab_size)


def _concise(rnn_class: type[nn.RNNBase], vocab_size: int, num_hiddens: int, num_layers: int, dropout: float,
             embedding_dim: int | None, bidirectional: bool = False) -> RNNLM:
    """An RNNLM over rnn_class; with several layers `dropout` also acts between them (torch's dropout)."""
    rnn = rnn_class(vocab_size if embedding_dim is None else embedding_dim, num_hiddens, num_layers,
                    dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
    return RNNLM(rnn, vocab_size, embedding_dim, dropout)


@register_model("rnn", defaults=RNN_DEFAULTS, tags=_TAGS)
def rnn(vocab_size: int, num_hiddens: int = 32, num_layers: int = 1, dropout: float = 0.0,
        embedding_dim: int | None = None):
    """RNN language model with nn.RNN (book 9.6)."""
    return _concise(nn.RNN, vocab_size, num_hiddens, num_layers, dropout, embedding_dim)


@register_model("gru", defaults=GATED_DEFAULTS, tags=_TAGS)
def gru(vocab_size: int, num_hiddens: int = 32, num_layers: int = 1, dropout: float = 0.0,
        embedding_dim: int | None = None):
    """GRU language model with nn.GRU (book 10.2)."""
    return _concise(nn.GRU, vocab_size, num_hiddens, num_layers, dropout, embedding_dim)


@register_model("lstm", defaults=GATED_DEFAULTS, tags=_TAGS)
def lstm(vocab_size: int, num_hiddens: int = 32, num_layers: int = 1, dropout: float = 0.0,
         embedding_dim: int | None = None):
    """LSTM language model with nn.LSTM (book 10.1)."""
    return _concise(nn.LSTM, vocab_size, num_hiddens, num_layers, dropout, embedding_dim)


@register_model("deep-gru", defaults=DEEP_DEFAULTS, tags=_TAGS)
def deep_gru(vocab_size: int, num_hiddens: int = 32, num_layers: int = 2, dropout: float = 0.0,
             embedding_dim: int | None = None):
    """Deep GRU language model, two nn.GRU layers by default (book 10.3)."""
    return _concise(nn.GRU, vocab_size, num_hiddens, num_layers, dropout, embedding_dim)


@register_model("deep-lstm", defaults=DEEP_DEFAULTS, tags=_TAGS)
def deep_lstm(vocab_size: int, num_hiddens: int = 32, num_layers: int = 2, dropout: float = 0.0,
              embedding_dim: int | None = None):
    """Deep LSTM language model, two nn.LSTM layers by default (book 10.3)."""
    return _concise(nn.LSTM, vocab_size, num_hiddens, num_layers, dropout, embedding_dim)


@register_model("bigru", defaults=GATED_DEFAULTS, tags=_TAGS)
def bigru(vocab_size: int, num_hiddens: int = 32, num_layers: int = 1, dropout: float = 0.0,
          embedding_dim: int | None = None):
    """Bidirectional nn.GRU (book 10.4); it sees the future, so it is no real language model."""
    return _concise(nn.GRU, vocab_size, num_hiddens, num_layers, dropout, embedding_dim, bidirectional=True)
