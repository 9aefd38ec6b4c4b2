"""Sequence-to-sequence learning with RNNs (book 10.7) and with Bahdanau attention (book 11.4).

    Seq2SeqEncoder           embedding -> multi-layer GRU over the source, time first
    Seq2SeqDecoder           the encoder's last-layer final hidden state (the context c) is
                             concatenated to every decoder input embedding; the GRU starts from
                             the encoder's final state
    Seq2SeqAttentionDecoder  at every step the context is an additive-attention average of the
                             encoder outputs, queried by the decoder's previous last-layer state

Both decoders follow divekit.models.encoder_decoder.Decoder, so greedy and beam search
(divekit.models.decoding) work with either. As in the book the encoder reads the padded source to
its end (valid lengths do not change its outputs); the attention decoder masks the padded source
positions out of its attention.

`masked_cross_entropy` is the training loss: cross-entropy averaged over the real target tokens
only. The book's packaged loss averages over the padded length instead (it divides the masked sum
by B * T), which weights a batch by its padding; here every real token counts the same.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ConfigError
from ..ops.init import xavier_uniform_
from .attention import AdditiveAttention
from .encoder_decoder import TRANSLATION_DEFAULTS, Decoder, Encoder, EncoderDecoder
from .registry import register_model


def init_seq2seq(module: nn.Module) -> None:
    """The book's init_seq2seq: Xavier-uniform weights for nn.Linear layers and nn.GRU weight matrices.

    Use as `net.apply(init_seq2seq)`. Biases keep torch's init; like the book the types are matched
    exactly.
    """
    if type(module) is nn.Linear:
        xavier_uniform_(module.weight)
    if type(module) is nn.GRU:
        for name, param in module.named_parameters():
            if name.startswith("weight"):  # weight_ih_l{k} (3H, in), weight_hh_l{k} (3H, H)
                xavier_uniform_(param)


def _check_tokens(X: torch.Tensor, what: str) -> None:
    if X.dim() != 2 or X.dtype.is_floating_point or X.dtype == torch.bool:
        raise ConfigError(f"{what} takes token ids of shape (batch, steps) and an integer dtype, "
                          f"got {tuple(X.shape)} {X.dtype}")


def _gru(num_inputs: int, num_hiddens: int, num_layers: int, dropout: float) -> nn.GRU:
    """A time-first nn.GRU; `dropout` acts between layers, so a one-layer GRU gets none (torch warns otherwise)."""
    return nn.GRU(num_inputs, num_hiddens, num_layers, dropout=dropout if num_layers > 1 else 0.0)


class Seq2SeqEncoder(Encoder):
    """The RNN encoder (book 10.7.2): source tokens -> every step's last-layer output and the final state."""

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = _gru(embed_size, num_hiddens, num_layers, dropout)
        self.apply(init_seq2seq)

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """X (B, T) -> (outputs (T, B, H), state (L, B, H)). `valid_lens` is accepted for the
        interface and not used: the GRU reads the padding too, as in the book."""
        _check_tokens(X, "Seq2SeqEncoder")
        embs = self.embedding(X.T)  # (T, B, E), time first
        outputs, state = self.rnn(embs)  # (T, B, H), (L, B, H)
        return outputs, state


class Seq2SeqDecoder(Decoder):
    """The RNN decoder (book 10.7.3).

    The state is the encoder's `(enc_outputs (T_src, B, H), hidden_state (L, B, H))`: the GRU
    starts from the encoder's final state, and the context c = enc_outputs[-1], the last layer's
    final hidden state, is concatenated to the embedding of every decoder input.
    """

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = _gru(embed_size + num_hiddens, num_hiddens, num_layers, dropout)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.apply(init_seq2seq)

    def init_state(self, enc_outputs: tuple[torch.Tensor, torch.Tensor], enc_valid_lens: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (outputs (T_src, B, H), state (L, B, H)) as they are."""
        return enc_outputs

    def forward(self, X: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """X (B, T) -> (logits (B, T, V), (enc_outputs, hidden_state (L, B, H)))."""
        _check_tokens(X, "Seq2SeqDecoder")
        enc_outputs, hidden_state = state
        embs = self.embedding(X.T)  # (T, B, E)
        context = enc_outputs[-1].expand(embs.shape[0], -1, -1)  # (B, H) -> (T, B, H)
        outputs, hidden_state = self.rnn(torch.cat((embs, context), dim=-1), hidden_state)  # (T, B, H)
        return self.dense(outputs).transpose(0, 1), (enc_outputs, hidden_state)  # (B, T, V)

    def reorder_state(self, state: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch rows `index` (B',) of the state; the batch is dim 1 of both (T_src, B, H) and (L, B, H)."""
        enc_outputs, hidden_state = state
        return enc_outputs.index_select(1, index), hidden_state.index_select(1, index)


class Seq2SeqAttentionDecoder(Decoder):
    """The RNN decoder with Bahdanau attention (book 11.4).

    At decoding step t the query is the decoder's previous last-layer hidden state s_{t-1}; the keys
    and values are the encoder outputs h_1..h_T, masked to the valid source length. The context
    c_t = sum_i alpha(s_{t-1}, h_i) h_i is concatenated to the embedding of the input token.

    The state is `(enc_outputs (B, T_src, H), hidden_state (L, B, H), enc_valid_lens (B,) or None)`,
    the encoder outputs batch first as the attention takes them. After a forward pass over T steps,
    `attention_weights` holds the weights of every step, (B, T, T_src).
    """

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        self.attention = AdditiveAttention(num_hiddens, num_hiddens, num_hiddens, dropout)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = _gru(embed_size + num_hiddens, num_hiddens, num_layers, dropout)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self._attention_weights: torch.Tensor | None = None
        self.apply(init_seq2seq)

    def init_state(self, enc_outputs: tuple[torch.Tensor, torch.Tensor], enc_valid_lens: torch.Tensor | None = None):
        """(enc outputs (T_src, B, H), state (L, B, H)) -> (enc outputs (B, T_src, H), state, enc_valid_lens)."""
        outputs, hidden_state = enc_outputs
        return outputs.transpose(0, 1), hidden_state, enc_valid_lens

    def forward(self, X: torch.Tensor, state) -> tuple[torch.Tensor, tuple]:
        """X (B, T) -> (logits (B, T, V), state), one attention and one GRU step per input token."""
        _check_tokens(X, "Seq2SeqAttentionDecoder")
        enc_outputs, hidden_state, enc_valid_lens = state
        embs = self.embedding(X.T)  # (T, B, E)
        outputs, weights = [], []
        for x in embs:  # x: (B, E)
            query = hidden_state[-1].unsqueeze(1)  # (B, 1, H)
            context = self.attention(query, enc_outputs, enc_outputs, enc_valid_lens)  # (B, 1, H)
            x = torch.cat((context, x.unsqueeze(1)), dim=-1)  # (B, 1, H + E)
            out, hidden_state = self.rnn(x.transpose(0, 1), hidden_state)  # (1, B, H), (L, B, H)
            outputs.append(out)
            weights.append(self.attention.attention_weights)  # (B, 1, T_src)
        self._attention_weights = torch.cat(weights, dim=1)  # (B, T, T_src)
        logits = self.dense(torch.cat(outputs, dim=0)).transpose(0, 1)  # (T, B, V) -> (B, T, V)
        return logits, (enc_outputs, hidden_state, enc_valid_lens)

    def reorder_state(self, state, index: torch.Tensor):
        """Batch rows `index` (B',): dim 0 of the (B, T_src, H) encoder outputs and the valid lengths,
        dim 1 of the (L, B, H) hidden state."""
        enc_outputs, hidden_state, enc_valid_lens = state
        return (enc_outputs.index_select(0, index), hidden_state.index_select(1, index),
                None if enc_valid_lens is None else enc_valid_lens.index_select(0, index))

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """The attention weights of the last forward pass, one row per decoded step: (B, T_dec, T_src)."""
        return self._attention_weights


def masked_cross_entropy(logits: torch.Tensor, Y: torch.Tensor, pad: int, reduction: str = "mean"):
    """Cross-entropy of logits (B, T, V) against targets Y (B, T), over the tokens Y != pad only.

    reduction "mean": the average over the real target tokens (a scalar; NaN if there are none).
    reduction "sum": `(sum, count)`, the summed loss and the number of real tokens, both 0-dim
    tensors, so a trainer can add them up over batches for a corpus-level average without a host
    sync per batch.
    """
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"masked_cross_entropy reduction must be 'mean' or 'sum', got {reduction!r}")
    if logits.dim() != 3 or logits.shape[:2] != Y.shape:
        raise ConfigError(f"masked_cross_entropy takes logits (B, T, V) and targets (B, T), "
                          f"got {tuple(logits.shape)} and {tuple(Y.shape)}")
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1), ignore_index=pad, reduction="sum")
    count = (Y != pad).sum()
    if reduction == "sum":
        return total, count
    return total / count


# ----------------------------------------------------------------------------------------------
# Registered models. Each takes the source and target vocabulary sizes from the dataset.

_TAGS = ("text", "seq2seq")


@register_model("seq2seq", defaults=TRANSLATION_DEFAULTS, tags=_TAGS)
def seq2seq(src_vocab_size: int, tgt_vocab_size: int, embed_size: int = 256, num_hiddens: int = 256,
            num_layers: int = 2, dropout: float = 0.2):
    """RNN encoder-decoder for machine translation (book 10.7)."""
    return EncoderDecoder(Seq2SeqEncoder(src_vocab_size, embed_size, num_hiddens, num_layers, dropout),
                          Seq2SeqDecoder(tgt_vocab_size, embed_size, num_hiddens, num_layers, dropout))


@register_model("seq2seq-attention", defaults=TRANSLATION_DEFAULTS, tags=_TAGS)
def seq2seq_attention(src_vocab_size: int, tgt_vocab_size: int, embed_size: int = 256, num_hiddens: int = 256,
                      num_layers: int = 2, dropout: float = 0.2):
    """RNN encoder-decoder with Bahdanau attention (book 11.4)."""
    return EncoderDecoder(Seq2SeqEncoder(src_vocab_size, embed_size, num_hiddens, num_layers, dropout),
                          Seq2SeqAttentionDecoder(tgt_vocab_size, embed_size, num_hiddens, num_layers, dropout))
