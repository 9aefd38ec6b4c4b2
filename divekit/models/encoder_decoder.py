"""The encoder-decoder interface (book 10.6) shared by the RNN seq2seq models and the Transformer.

Batches of a translation dataset are `(X, dec_X, X_valid_len, Y)`: source tokens (B, T_src),
decoder inputs `<bos> y_1 ... y_{T-1}` (B, T), the number of real (unpadded) source tokens (B,)
and the targets `y_1 ... y_T` (B, T) — teacher forcing feeds the decoder the true previous token.
At inference the decoder is fed its own predictions one step at a time (greedy or beam search,
divekit.models.decoding), which is why the decoder exposes its state: `init_state` from the
encoder's outputs, a step `forward(dec_X, state) -> (logits, state)`, and `reorder_state` to keep
the rows of the beams that survive.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn as nn

# training defaults of the translation models (the book's, chapter 10-11); models override lr
TRANSLATION_DEFAULTS = {"data": "fra-eng", "optimizer": "adam", "lr": 0.005, "epochs": 30, "batch_size": 128,
                        "grad_clip": 1.0}


class Encoder(nn.Module, ABC):
    """Source tokens (B, T_src) and their valid lengths (B,) -> encoder outputs (any structure)."""

    @abstractmethod
    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None = None) -> Any: ...


class Decoder(nn.Module, ABC):
    """Decoder inputs (B, T) and a state -> logits (B, T, V_tgt) and the next state."""

    @abstractmethod
    def init_state(self, enc_outputs: Any, enc_valid_lens: torch.Tensor | None = None) -> Any:
        """The decoder's initial state from the encoder's outputs."""

    @abstractmethod
    def forward(self, X: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...

    @abstractmethod
    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        """The state of the batch rows `index` (B',) — for beam search, which keeps some rows and
        duplicates others."""

    @property
    def attention_weights(self) -> Any:
        """Attention weights of the last forward pass (decoders with attention override this)."""
        return None


class EncoderDecoder(nn.Module):
    """An encoder and a decoder trained together (teacher forcing in `forward`)."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, X: torch.Tensor, dec_X: torch.Tensor, X_valid_len: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V_tgt) for every target position given the true previous tokens dec_X (B, T)."""
        enc_outputs = self.encoder(X, X_valid_len)
        state = self.decoder.init_state(enc_outputs, X_valid_len)
        return self.decoder(dec_X, state)[0]
