"""Attention mechanisms (book chapter 11): masked softmax, scaled dot-product, additive and
multi-head attention, and the sinusoidal positional encoding.

Shapes follow the book: queries (B, Q, d), keys (B, K, d), values (B, K, v), where B is the batch
size, Q the number of queries and K the number of key-value pairs. `valid_lens` says how many keys
each query may look at (the rest are padding): None (all), (B,) (the same for every query of a
batch row) or (B, Q) (one per query, e.g. the causal mask of a decoder).

The chapter's experiments (Nadaraya-Watson kernel regression, the positional-encoding figure) are
in divekit.book.attention; the heatmap of attention weights is divekit.core.plot.attention_heatmap.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# The book fills masked scores with -1e6 rather than -inf: exp(-1e6 - max) is exactly 0 in
# float32, and a row whose keys are all masked becomes uniform instead of NaN.
MASK_VALUE = -1e6


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of X (B, Q, K) that gives zero weight to keys at positions
    >= the valid length: valid_lens is None (no mask), (B,) or (B, Q)."""
    if valid_lens is None:
        return F.softmax(X, dim=-1)
    B, Q, K = X.shape
    if valid_lens.dim() == 1:
        if valid_lens.shape[0] != B:
            raise ValueError(f"masked_softmax: valid_lens of shape {tuple(valid_lens.shape)} does not match the "
                             f"batch size {B} of scores {tuple(X.shape)}; pass one length per batch row (B,)")
        valid_lens = valid_lens[:, None]  # (B, 1): the same length for every query
    elif valid_lens.shape != (B, Q):
        raise ValueError(f"masked_softmax: valid_lens of shape {tuple(valid_lens.shape)} does not fit scores "
                         f"{tuple(X.shape)}; pass (B,) = ({B},) or (B, Q) = ({B}, {Q})")
    positions = torch.arange(K, device=X.device)  # (K,)
    mask = positions[None, None, :] >= valid_lens[:, :, None]  # (B, Q or 1, K): True where masked
    return F.softmax(X.masked_fill(mask, MASK_VALUE), dim=-1)


class DotProductAttention(nn.Module):
    """Scaled dot-product attention: softmax(Q K^T / sqrt(d)) V (book 11.3.2).

    After each forward pass `attention_weights` holds the weights (B, Q, K) before dropout.
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """queries (B, Q, d), keys (B, K, d), values (B, K, v) -> (B, Q, v)."""
        d = queries.shape[-1]
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)  # (B, Q, K)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (B, Q, v)


class AdditiveAttention(nn.Module):
    """Additive attention: a(q, k) = w_v^T tanh(W_q q + W_k k) (book 11.3.3), for queries and
    keys of different sizes.

    After each forward pass `attention_weights` holds the weights (B, Q, K) before dropout.
    """

    def __init__(self, query_size: int, key_size: int, num_hiddens: int, dropout: float = 0.0):
        super().__init__()
        self.W_q = nn.Linear(query_size, num_hiddens, bias=False)
        self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """queries (B, Q, query_size), keys (B, K, key_size), values (B, K, v) -> (B, Q, v)."""
        queries, keys = self.W_q(queries), self.W_k(keys)  # (B, Q, h), (B, K, h)
        # every query plus every key by broadcasting: (B, Q, 1, h) + (B, 1, K, h) -> (B, Q, K, h)
        features = torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))
        scores = self.w_v(features).squeeze(-1)  # (B, Q, K, 1) -> (B, Q, K)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (B, Q, v)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (book 11.5): num_heads scaled dot-product attentions over learned
    projections of size num_hiddens / num_heads, computed in parallel as one batched attention.

    Computes the same function as nn.MultiheadAttention(num_hiddens, num_heads, bias=bias,
    batch_first=True) with in_proj_weight = cat(W_q, W_k, W_v) and out_proj = W_o.
    """

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        if num_hiddens % num_heads:
            raise ValueError(f"MultiHeadAttention: num_hiddens={num_hiddens} is not divisible by "
                             f"num_heads={num_heads}; choose num_hiddens as a multiple of num_heads")
        self.num_hiddens, self.num_heads = num_hiddens, num_heads
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_k = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_v = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)

    def transpose_qkv(self, X: torch.Tensor) -> torch.Tensor:
        """(B, n, num_hiddens) -> (B * num_heads, n, num_hiddens / num_heads): the heads become
        batch rows, head by head within each batch row."""
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)  # (B, n, heads, d_head)
        X = X.permute(0, 2, 1, 3)  # (B, heads, n, d_head)
        return X.reshape(-1, X.shape[2], X.shape[3])  # (B * heads, n, d_head)

    def transpose_output(self, X: torch.Tensor) -> torch.Tensor:
        """The inverse of transpose_qkv: (B * num_heads, n, d_head) -> (B, n, num_hiddens)."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])  # (B, heads, n, d_head)
        X = X.permute(0, 2, 1, 3)  # (B, n, heads, d_head)
        return X.reshape(X.shape[0], X.shape[1], -1)  # (B, n, num_hiddens)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """queries (B, Q, num_hiddens), keys and values (B, K, num_hiddens), valid_lens None, (B,)
        or (B, Q) -> (B, Q, num_hiddens)."""
        queries = self.transpose_qkv(self.W_q(queries))  # (B * heads, Q, d_head)
        keys = self.transpose_qkv(self.W_k(keys))  # (B * heads, K, d_head)
        values = self.transpose_qkv(self.W_v(values))  # (B * heads, K, d_head)
        if valid_lens is not None:
            # each batch row's lengths for each of its heads: (B,) -> (B * heads,), (B, Q) -> (B * heads, Q)
            valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
        output = self.attention(queries, keys, values, valid_lens)  # (B * heads, Q, d_head)
        return self.W_o(self.transpose_output(output))  # (B, Q, num_hiddens)

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """The last forward pass's weights (B * num_heads, Q, K), as the book stores them."""
        return self.attention.attention_weights

    def head_attention_weights(self) -> torch.Tensor | None:
        """The last forward pass's weights viewed as (B, num_heads, Q, K)."""
        w = self.attention_weights
        return None if w is None else w.reshape(-1, self.num_heads, w.shape[1], w.shape[2])  # (B, heads, Q, K)


class PositionalEncoding(nn.Module):
    """The sinusoidal positional encoding (book 11.6.3): X + P, with
    P[i, 2j] = sin(i / 10000^(2j/d)) and P[i, 2j+1] = cos(i / 10000^(2j/d)) for d = num_hiddens.

    `offset` in forward is the position of X's first row, so a decoder fed one token at a time
    adds the encoding of the token's real position (the book's version adds position 0 each step).
    """

    def __init__(self, num_hiddens: int, dropout: float = 0.0, max_len: int = 1000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        X = torch.arange(max_len, dtype=torch.float32).reshape(-1, 1) / torch.pow(
            10000, torch.arange(0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)  # (max_len, ceil(d / 2))
        P = torch.zeros((1, max_len, num_hiddens))
        P[:, :, 0::2] = torch.sin(X)
        P[:, :, 1::2] = torch.cos(X[:, : num_hiddens // 2])  # an odd num_hiddens has one cosine column fewer
        # a buffer moves with .to(device); not persistent, since it is a function of the arguments
        self.register_buffer("P", P, persistent=False)

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """X (B, T, num_hiddens) -> X + P[offset : offset + T], then dropout."""
        T = X.shape[1]
        if offset + T > self.P.shape[1]:
            raise ValueError(f"PositionalEncoding: positions up to {offset + T} but max_len={self.P.shape[1]}; "
                             f"build it with a larger max_len or feed shorter sequences")
        return self.dropout(X + self.P[:, offset : offset + T, :].to(X.dtype))
