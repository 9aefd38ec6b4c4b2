"""The Transformer encoder-decoder (book 11.7), built from divekit.models.attention.

Encoder: token embedding * sqrt(num_hiddens) + positional encoding, then num_blks blocks of
multi-head self-attention and a position-wise FFN, each followed by AddNorm (residual connection
and layer normalization). Decoder blocks add masked self-attention before the encoder-decoder
attention.

The decoder's state is the book's `[enc_outputs, enc_valid_lens, key_values]`, where
key_values[i] (B, t, num_hiddens) holds block i's inputs for the t tokens decoded so far: fed one
token at a time, a block attends to the cached steps plus the new one, so decoding step by step
computes exactly what the teacher-forced pass computes for that position. Self-attention is
causal in every mode: query t (counting the cached steps) sees keys 0..t. (The book switches the
mask off in eval mode and adds position 0's encoding at every inference step; both would break
that equality.)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .attention import MultiHeadAttention, PositionalEncoding
from .encoder_decoder import TRANSLATION_DEFAULTS, Decoder, Encoder, EncoderDecoder
from .registry import register_model

# [enc_outputs (B, T_src, num_hiddens), enc_valid_lens (B,) or None, key_values per block]
DecoderState = list


class PositionWiseFFN(nn.Module):
    """The same two-layer MLP applied at every position: (B, T, num_inputs) -> (B, T, num_outputs)."""

    def __init__(self, num_inputs: int, ffn_num_hiddens: int, num_outputs: int):
        super().__init__()
        self.dense1 = nn.Linear(num_inputs, ffn_num_hiddens)
        self.relu = nn.ReLU()
        self.dense2 = nn.Linear(ffn_num_hiddens, num_outputs)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.relu(self.dense1(X)))


class AddNorm(nn.Module):
    """Residual connection followed by layer normalization: LayerNorm(dropout(Y) + X)."""

    def __init__(self, norm_shape: int | tuple[int, ...], dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(norm_shape)

    def forward(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(self.dropout(Y) + X)


class TransformerEncoderBlock(nn.Module):
    """Multi-head self-attention and a position-wise FFN, each with AddNorm; keeps the shape (B, T, num_hiddens)."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, dropout: float, use_bias: bool = False):
        super().__init__()
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(num_hiddens, ffn_num_hiddens, num_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
        Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))
        return self.addnorm2(Y, self.ffn(Y))


class TransformerEncoder(Encoder):
    """Source tokens (B, T_src) -> encoder outputs (B, T_src, num_hiddens).

    `attention_weights[i]` holds block i's self-attention weights (B * num_heads, T_src, T_src)
    from the last forward pass.
    """

    def __init__(self, vocab_size: int, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, num_blks: int,
                 dropout: float, use_bias: bool = False):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.blks = nn.ModuleList(TransformerEncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias)
                                  for _ in range(num_blks))
        self.attention_weights: list[torch.Tensor | None] = [None] * num_blks

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        # The book's scaling by sqrt(num_hiddens) comes from the Transformer paper, whose embeddings
        # start with std 1/sqrt(num_hiddens), so that the product is on the scale of the positional
        # encoding ([-1, 1]). With torch's N(0, 1) init, kept here as in the book, the embedding
        # starts sqrt(num_hiddens) times larger than the encoding.
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))  # (B, T_src, num_hiddens)
        for blk in self.blks:
            X = blk(X, valid_lens)
        self.attention_weights = [blk.attention.attention_weights for blk in self.blks]
        return X


class TransformerDecoderBlock(nn.Module):
    """The i-th decoder block: causal self-attention over the steps decoded so far (cached in the
    state), attention to the encoder outputs, and a position-wise FFN, each with AddNorm."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, dropout: float, i: int,
                 use_bias: bool = False):
        super().__init__()
        self.i = i
        self.attention1 = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.attention2 = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm2 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(num_hiddens, ffn_num_hiddens, num_hiddens)
        self.addnorm3 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """X (B, T, num_hiddens): the next T steps -> (B, T, num_hiddens); appends X to this block's
        cache state[2][i] (in place, as in the book)."""
        enc_outputs, enc_valid_lens, cache = state
        num_cached = 0 if cache[self.i] is None else cache[self.i].shape[1]
        key_values = X if cache[self.i] is None else torch.cat((cache[self.i], X), dim=1)  # (B, t + T, num_hiddens)
        cache[self.i] = key_values
        B, T, _ = X.shape
        # causal mask: the query at position num_cached + j sees keys 0..num_cached + j; in
        # training (nothing cached) these are the book's dec_valid_lens 1..T
        dec_valid_lens = torch.arange(num_cached + 1, num_cached + T + 1, device=X.device).repeat(B, 1)  # (B, T)
        Y = self.addnorm1(X, self.attention1(X, key_values, key_values, dec_valid_lens))
        Z = self.addnorm2(Y, self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens))
        return self.addnorm3(Z, self.ffn(Z)), state


class TransformerDecoder(Decoder):
    """Decoder inputs (B, T) and the state -> logits (B, T, vocab_size) and the updated state.

    Fed the whole target prefix at once (teacher forcing) or a few steps at a time (inference):
    the cached steps give each new token its position and its keys, so both compute the same logits.
    """

    def __init__(self, vocab_size: int, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, num_blks: int,
                 dropout: float, use_bias: bool = False):
        super().__init__()
        self.num_hiddens, self.num_blks = num_hiddens, num_blks
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.blks = nn.ModuleList(
            TransformerDecoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, i, use_bias)
            for i in range(num_blks))
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self._attention_weights: list[list[torch.Tensor | None]] = [[None] * num_blks for _ in range(2)]

    def init_state(self, enc_outputs: torch.Tensor, enc_valid_lens: torch.Tensor | None = None) -> DecoderState:
        """[enc_outputs (B, T_src, num_hiddens), enc_valid_lens (B,) or None, [None] * num_blks]."""
        return [enc_outputs, enc_valid_lens, [None] * self.num_blks]

    def forward(self, X: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """X (B, T) target tokens following the cached steps -> logits (B, T, vocab_size) and a new
        state with the T steps appended to every block's cache (the state passed in is left as is)."""
        enc_outputs, enc_valid_lens, cache = state
        state = [enc_outputs, enc_valid_lens, list(cache)]  # a new cache list, so that `state` stays reusable
        num_cached = 0 if cache[0] is None else cache[0].shape[1]
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens), offset=num_cached)  # (B, T, num_hiddens)
        for blk in self.blks:
            X, state = blk(X, state)
        # new lists each pass, so that a caller keeping the weights of earlier steps keeps them
        self._attention_weights = [[blk.attention1.attention_weights for blk in self.blks],
                                   [blk.attention2.attention_weights for blk in self.blks]]
        return self.dense(X), state  # (B, T, vocab_size)

    def reorder_state(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        """The state of batch rows `index` (B',): rows of enc_outputs, enc_valid_lens and every cache."""
        enc_outputs, enc_valid_lens, cache = state
        return [
            enc_outputs.index_select(0, index),
            None if enc_valid_lens is None else enc_valid_lens.index_select(0, index),
            [None if kv is None else kv.index_select(0, index) for kv in cache],
        ]

    @property
    def attention_weights(self) -> list[list[torch.Tensor | None]]:
        """[self-attention weights per block, encoder-decoder attention weights per block] of the
        last forward pass, shaped (B * num_heads, T, t + T) and (B * num_heads, T, T_src) for T new
        steps after t cached ones."""
        return self._attention_weights


class Transformer(EncoderDecoder):
    """A TransformerEncoder and a TransformerDecoder of the same sizes (book 11.7.4)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, num_hiddens: int = 256, ffn_num_hiddens: int = 64,
                 num_heads: int = 4, num_blks: int = 2, dropout: float = 0.2, use_bias: bool = False):
        super().__init__(
            TransformerEncoder(src_vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, use_bias),
            TransformerDecoder(tgt_vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, use_bias),
        )


@register_model("transformer", defaults={**TRANSLATION_DEFAULTS, "lr": 0.0015}, tags=("text", "seq2seq"))  # book 11.7
def transformer(src_vocab_size: int, tgt_vocab_size: int, num_hiddens: int = 256, ffn_num_hiddens: int = 64,
                num_heads: int = 4, num_blks: int = 2, dropout: float = 0.2):
    """The Transformer encoder-decoder with the book's sizes for English-French (book 11.7)."""
    return Transformer(src_vocab_size, tgt_vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout)
