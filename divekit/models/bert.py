"""BERT (book 15.8): a Transformer encoder pretrained by masked language modeling and
next-sentence prediction, then fine-tuned with small task heads (book 16.6-16.7).

Input representation: one sequence `<cls> A <sep>` (single text) or `<cls> A <sep> B <sep>`
(text pair), with segment ids 0 for `<cls> A <sep>` and 1 for `B <sep>`
(`get_tokens_and_segments`). The encoder adds token, segment and LEARNABLE positional embeddings
and runs TransformerEncoderBlocks (divekit.models.transformer) under the valid-length mask.

Heads:
* MaskLM: an MLP on the encodings at the masked positions only, (B, P, num_hiddens) -> (B, P, V);
* NextSentencePred: a linear layer on the `<cls>` encoding after the `hidden` tanh layer -> 2 logits;
* BERTClassifier: single-text or text-pair classification on the `<cls>` representation (the
  book's fine-tuning model for SNLI: the pretrained encoder and hidden layer, plus a linear output);
* BERTTagger: a linear layer on every token's encoding (token-level tasks such as tagging).

Sizes: `bert-small` is the book's small model (num_hiddens 128, FFN 256, 2 heads, 2 blocks,
dropout 0.2, max_len 64; Adam lr 0.01 in the book, 0.001 here: see BERT_DEFAULTS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.checkpoint import Checkpoint
from ..core.errors import DivekitError
from ..core.rundir import checkpoint_path
from .registry import register_model
from .transformer import TransformerEncoderBlock

CLS, SEP, PAD, MASK = "<cls>", "<sep>", "<pad>", "<mask>"
# the book's reserved tokens, indices 1..4 after <unk>
RESERVED = (PAD, MASK, CLS, SEP)
# architecture hyperparameters a fine-tuned model must share with its pretrained encoder
ARCH_KEYS = ("num_hiddens", "ffn_num_hiddens", "num_heads", "num_blks", "dropout", "max_len")
SMALL = {"num_hiddens": 128, "ffn_num_hiddens": 256, "num_heads": 2, "num_blks": 2, "dropout": 0.2, "max_len": 64}


def get_tokens_and_segments(tokens_a: Sequence[str], tokens_b: Sequence[str] | None = None
                            ) -> tuple[list[str], list[int]]:
    """`<cls>` A `<sep>` [B `<sep>`] and its segment ids: 0 for `<cls>` A `<sep>`, 1 for B `<sep>` (book 15.8.1)."""
    tokens = [CLS, *tokens_a, SEP]
    segments = [0] * (len(tokens_a) + 2)
    if tokens_b is not None:
        tokens += [*tokens_b, SEP]
        segments += [1] * (len(tokens_b) + 1)
    return tokens, segments


class BERTEncoder(nn.Module):
    """Token ids and segment ids (B, T) -> encodings (B, T, num_hiddens).

    Embeddings: token + segment + a learnable positional embedding per position (up to max_len),
    all initialized N(0, 1) as in the book; then num_blks Transformer encoder blocks (with biases).
    """

    def __init__(self, vocab_size: int, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, num_blks: int,
                 dropout: float, max_len: int = 1000):
        super().__init__()
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, num_hiddens)
        self.segment_embedding = nn.Embedding(2, num_hiddens)
        self.blks = nn.ModuleList(TransformerEncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, True)
                                  for _ in range(num_blks))
        self.pos_embedding = nn.Parameter(torch.randn(1, max_len, num_hiddens))

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None
                ) -> torch.Tensor:
        T = tokens.shape[1]
        if T > self.max_len:
            raise ValueError(f"BERTEncoder: {T} tokens exceed max_len={self.max_len} positional embeddings; "
                             "truncate the input or build the model with a larger max_len")
        X = self.token_embedding(tokens) + self.segment_embedding(segments)  # (B, T, num_hiddens)
        X = X + self.pos_embedding[:, :T, :]
        for blk in self.blks:
            X = blk(X, valid_lens)
        return X


class MaskLM(nn.Module):
    """The masked-language-model head: an MLP applied only at the prediction positions.

    X (B, T, num_hiddens), pred_positions (B, P) -> logits (B, P, vocab_size).
    """

    def __init__(self, vocab_size: int, num_hiddens: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_hiddens, num_hiddens), nn.ReLU(), nn.LayerNorm(num_hiddens),
                                 nn.Linear(num_hiddens, vocab_size))

    def forward(self, X: torch.Tensor, pred_positions: torch.Tensor) -> torch.Tensor:
        B, P = pred_positions.shape
        batch_idx = torch.arange(B, device=X.device).repeat_interleave(P)  # (B * P,): 0 0 .. 1 1 ..
        masked_X = X[batch_idx, pred_positions.reshape(-1)].reshape(B, P, -1)  # (B, P, num_hiddens)
        return self.mlp(masked_X)  # (B, P, vocab_size)


class NextSentencePred(nn.Module):
    """The next-sentence-prediction head: the `<cls>` representation (B, num_hiddens) -> 2 logits
    (index 1: B follows A)."""

    def __init__(self, num_hiddens: int):
        super().__init__()
        self.output = nn.Linear(num_hiddens, 2)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.output(X)


class BERTModel(nn.Module):
    """The encoder with both pretraining heads (book 15.8.5).

    forward(tokens, segments, valid_lens, pred_positions) -> (encoded tokens (B, T, num_hiddens),
    MLM logits (B, P, V) or None without pred_positions, NSP logits (B, 2)). The NSP head reads the
    `<cls>` encoding through `hidden` (linear + tanh), which fine-tuning reuses.
    """

    def __init__(self, vocab_size: int, num_hiddens: int = 128, ffn_num_hiddens: int = 256, num_heads: int = 2,
                 num_blks: int = 2, dropout: float = 0.2, max_len: int = 64):
        super().__init__()
        self.vocab_size = vocab_size
        self.encoder = BERTEncoder(vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, max_len)
        self.hidden = nn.Sequential(nn.Linear(num_hiddens, num_hiddens), nn.Tanh())
        self.mlm = MaskLM(vocab_size, num_hiddens)
        self.nsp = NextSentencePred(num_hiddens)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None,
                pred_positions: torch.Tensor | None = None):
        encoded_X = self.encoder(tokens, segments, valid_lens)  # (B, T, num_hiddens)
        mlm_Y_hat = self.mlm(encoded_X, pred_positions) if pred_positions is not None else None
        nsp_Y_hat = self.nsp(self.hidden(encoded_X[:, 0, :]))  # the <cls> token
        return encoded_X, mlm_Y_hat, nsp_Y_hat


class BERTClassifier(nn.Module):
    """Single-text or text-pair classification (book 16.7.2): the BERT encoder, its `hidden`
    layer on `<cls>`, and a new linear output layer.

    forward(tokens, segments, valid_lens) -> logits (B, num_classes).
    """

    def __init__(self, vocab_size: int, num_classes: int, num_hiddens: int = 128, ffn_num_hiddens: int = 256,
                 num_heads: int = 2, num_blks: int = 2, dropout: float = 0.2, max_len: int = 64):
        super().__init__()
        self.encoder = BERTEncoder(vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, max_len)
        self.hidden = nn.Sequential(nn.Linear(num_hiddens, num_hiddens), nn.Tanh())
        self.output = nn.Linear(num_hiddens, num_classes)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None
                ) -> torch.Tensor:
        encoded_X = self.encoder(tokens, segments, valid_lens)  # (B, T, num_hiddens)
        return self.output(self.hidden(encoded_X[:, 0, :]))  # (B, num_classes)


class BERTTagger(nn.Module):
    """Token-level tasks (tagging, book 16.6.3): a linear layer on every token's encoding.

    forward(tokens, segments, valid_lens) -> logits (B, T, num_tags); positions past the valid
    length carry logits too, which the loss ignores (see `tagging_loss`).
    """

    def __init__(self, vocab_size: int, num_tags: int, num_hiddens: int = 128, ffn_num_hiddens: int = 256,
                 num_heads: int = 2, num_blks: int = 2, dropout: float = 0.2, max_len: int = 64):
        super().__init__()
        self.encoder = BERTEncoder(vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, max_len)
        self.output = nn.Linear(num_hiddens, num_tags)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.output(self.encoder(tokens, segments, valid_lens))  # (B, T, num_tags)


def tagging_loss(logits: torch.Tensor, tags: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy per tagged token: logits (B, T, K), tags (B, T) with `ignore_index` at
    `<cls>`, `<sep>` and padding."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1), ignore_index=ignore_index)


# --------------------------------------------------------------------------------------------
# Pretrained weights and representations
# --------------------------------------------------------------------------------------------


def load_pretrained(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Copy a pretrained BERTModel's `encoder.*` and `hidden.*` weights (a state dict) into a
    fine-tuning model (BERTClassifier, BERTTagger); its new output layer keeps its random init.
    Raises DivekitError if the sizes differ."""
    own = model.state_dict()
    shared = {k: v for k, v in state.items() if k.startswith(("encoder.", "hidden.")) and k in own}
    missing = [k for k in own if k.startswith("encoder.") and k not in shared]
    wrong = [k for k, v in shared.items() if v.shape != own[k].shape]
    if missing or wrong:
        raise DivekitError(f"the pretrained weights do not fit this model: missing {missing[:3]}, "
                           f"wrong shapes {wrong[:3]}; fine-tune with the sizes of the pretraining run")
    model.load_state_dict(shared, strict=False)
    return model


def bert_config_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The architecture (ARCH_KEYS) of a bert-small run, from its checkpoint's meta: the defaults,
    the data's max_len (which the factory takes from the context), then the run's model args."""
    context_len = {"max_len": meta["context"]["max_len"]} if "max_len" in meta.get("context", {}) else {}
    return {**SMALL, **context_len, **{k: v for k, v in meta.get("model_args", {}).items() if k in ARCH_KEYS}}


def load_pretrained_run(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(BERTModel state dict, checkpoint meta) of a `bert-small` run folder (best checkpoint)."""
    try:
        ckpt = Checkpoint(checkpoint_path(run_dir, "best"))
    except DivekitError as e:
        raise DivekitError(f"{e} Give the folder of a finished `divekit train bert-small` run.") from None
    if ckpt.meta.get("task") != "bert-pretrain" or "vocab" not in ckpt.meta.get("context", {}):
        raise DivekitError(f"{run_dir} is a {ckpt.meta.get('task')} run of {ckpt.meta.get('model')!r}, not a BERT "
                           "pretraining run (`divekit train bert-small --data ptb`)")
    return ckpt.model_state(), ckpt.meta


@torch.no_grad()
def bert_encoding(model: nn.Module, vocab, tokens_a: Sequence[str], tokens_b: Sequence[str] | None = None
                  ) -> tuple[torch.Tensor, list[str], list[int]]:
    """The contextual representation of every token of `<cls>` A `<sep>` [B `<sep>`] (the book's
    get_bert_encoding): (encodings (T, num_hiddens), tokens, segments).

    Row 0 (the `<cls>` token) represents the whole input; row i the i-th token in its context.
    `model` is a BERTModel (or anything with a BERTEncoder as `.encoder`), put in eval mode here.
    """
    encoder = model.encoder if hasattr(model, "encoder") else model
    tokens, segments = get_tokens_and_segments(list(tokens_a), None if tokens_b is None else list(tokens_b))
    if len(tokens) > encoder.max_len:
        raise DivekitError(f"the input has {len(tokens)} tokens with <cls> and <sep>; this model takes at most "
                           f"{encoder.max_len}: shorten it")
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    ids = torch.tensor([vocab[tokens]], device=device)  # (1, T)
    seg = torch.tensor([segments], device=device)  # (1, T)
    encoded = encoder(ids, seg, torch.tensor([len(tokens)], device=device))[0]  # (T, num_hiddens)
    encoder.train(was_training)
    return encoded, tokens, segments


# --------------------------------------------------------------------------------------------
# Registered models
# --------------------------------------------------------------------------------------------

# pretraining settings: Adam as in the book (15.10), batch 128 instead of 512 (more updates per
# minute on a CPU) and lr 0.001 instead of 0.01: at 0.01 the encoder collapses within tens of steps
# (every token gets nearly the same vector, cosine > 0.9999; the MLM head falls back to unigram
# frequencies, loss ~6.7 on PTB) and stays there. data "ptb" as BERT pretraining pairs (divekit.data.bert)
BERT_DEFAULTS = {"data": "ptb", "data_args": {"objective": "bert"}, "optimizer": "adam", "lr": 0.001,
                 "batch_size": 128, "epochs": 10}


@register_model("bert-small", defaults=BERT_DEFAULTS, tags=("text", "bert"))
def bert_small(vocab_size: int, num_hiddens: int = 128, ffn_num_hiddens: int = 256, num_heads: int = 2,
               num_blks: int = 2, dropout: float = 0.2, max_len: int = 64):
    """BERT with the book's small sizes (128 hidden, 2 heads, 2 blocks), MLM + NSP heads (book 15.8)."""
    return BERTModel(vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, max_len)


@register_model("bert-classifier", defaults={"data": "ptb-bshift", "optimizer": "adam", "lr": 1e-4,
                                             "batch_size": 32, "epochs": 10}, tags=("text", "bert"))
def bert_classifier(vocab_size: int, num_classes: int, bert_config: dict | None = None,
                    bert_state: dict | None = None):
    """BERT fine-tuned for single-text or text-pair classification on <cls> (book 16.7).

    `bert_config` (the pretrained run's sizes) and `bert_state` (its weights) come from the
    dataset when it is built with `--data-arg pretrained=RUN_DIR`; without them the model is the
    same architecture (bert-small sizes) trained from scratch.
    """
    model = BERTClassifier(vocab_size, num_classes, **{**SMALL, **(bert_config or {})})
    return load_pretrained(model, bert_state) if bert_state is not None else model
