"""Decoding an encoder-decoder's output sequence (book 10.7.6 and 10.8): greedy, beam and exhaustive search.

Any `EncoderDecoder` whose decoder follows divekit.models.encoder_decoder.Decoder works: the
decoder is fed its own predictions one step at a time, starting from `<bos>`.

Scores (book 10.8.3). A candidate sequence y_1 .. y_L is scored by

    score(y) = (1 / L^alpha) * sum_{t=1..L} log P(y_t | y_1, ..., y_{t-1}, c)

Convention: L counts the generated tokens *including* the final `<eos>` when the sequence ends
with one (and never `<bos>`), and the sum includes log P(<eos> | ...): ending is a choice the model
makes with a probability, like any other token. (The book forms its final candidates by
discarding the portions "including and after <eos>"; scored literally that way, "A <eos>" and the
unfinished prefix "A" would be the same candidate, and a 0-token answer would have L = 0.) A sequence ends at its first `<eos>` or when it has max_len tokens; the candidates
are the sequences that ended, at any length up to max_len. The token lists returned leave the
`<eos>` out, as the book's translations do.
"""

from __future__ import annotations

import contextlib
import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ConfigError

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
EXHAUSTIVE_LIMIT = 200_000  # the most sequences exhaustive_search scores


@contextlib.contextmanager
def _inference(model: nn.Module):
    """Eval mode (no dropout) and no gradients for the block; the model gets its previous mode back."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_args(src: torch.Tensor, src_valid_len, max_len: int, what: str) -> torch.Tensor | None:
    """Validate the source (B, T_src) and return its valid lengths as a (B,) tensor (or None)."""
    if src.dim() != 2 or src.dtype.is_floating_point or src.dtype == torch.bool:
        raise ConfigError(f"{what} takes source token ids of shape (batch, steps) and an integer dtype, "
                          f"got {tuple(src.shape)} {src.dtype}")
    if max_len < 1:
        raise ConfigError(f"{what} needs max_len >= 1, got {max_len}")
    if src_valid_len is None:
        return None
    valid = torch.as_tensor(src_valid_len, device=src.device).reshape(-1)  # (B,)
    if valid.numel() != src.shape[0]:
        raise ConfigError(f"{what}: src_valid_len has {valid.numel()} entries for a batch of {src.shape[0]} sources")
    return valid


def _cut_at_eos(tokens: list[int], eos: int) -> list[int]:
    """The tokens before the first `<eos>` (all of them if there is none)."""
    return tokens[:tokens.index(eos)] if eos in tokens else tokens


def _step_weights(decoder: nn.Module):
    """The decoder's attention weights of the step just run, cloned: a later step may overwrite them."""
    weights = decoder.attention_weights
    return weights.clone() if isinstance(weights, torch.Tensor) else weights


def greedy_decode(model: nn.Module, src: torch.Tensor, src_valid_len, bos: int, eos: int, max_len: int):
    """The book's predict_step (10.7.6): at each step feed back the most likely token.

    Args:
        model: an EncoderDecoder.
        src: source token ids (B, T_src), B = 1 or a batch.
        src_valid_len: the real (unpadded) source lengths (B,), an int for B = 1, or None.
        bos, eos: the target vocabulary's `<bos>` and `<eos>` indices.
        max_len: the most tokens to generate per row, `<eos>` included.

    Returns `(tokens, attention_weights)`: one list of token ids per row, cut before its first
    `<eos>`; and for a decoder whose `attention_weights` is a tensor (B, 1, T_src) per step, the
    weights of every step run, (B, T_dec, T_src) (rows that ended early keep going until all have),
    else the list of the decoder's per-step weights, or None for a decoder without attention.
    """
    valid = _check_args(src, src_valid_len, max_len, "greedy_decode")
    decoder = model.decoder
    with _inference(model):
        state = decoder.init_state(model.encoder(src, valid), valid)
        Y = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        outputs, weights = [], []
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)  # (B,)
        for _ in range(max_len):
            logits, state = decoder(Y, state)  # (B, 1, V)
            Y = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
            outputs.append(Y)
            weights.append(_step_weights(decoder))
            finished |= Y[:, 0] == eos
            if finished.all():  # one host sync per step; decoding is not a hot loop
                break
    rows = [_cut_at_eos(row, eos) for row in torch.cat(outputs, dim=1).tolist()]
    if all(w is None for w in weights):
        return rows, None
    if all(isinstance(w, torch.Tensor) for w in weights):
        return rows, torch.cat(weights, dim=1)  # (B, T_dec, T_src)
    return rows, weights


def beam_search(model: nn.Module, src: torch.Tensor, src_valid_len, bos: int, eos: int, max_len: int,
                beam_size: int, alpha: float = 0.75) -> list[tuple[list[int], float]]:
    """Beam search (book 10.8.3) for one source sequence (1, T_src).

    The k = beam_size most likely sequences are decoded together as a batch of k rows. At each step
    the alive beams are extended by every token and the extensions with the highest sum log P fill
    the k slots (`decoder.reorder_state` picks each one's parent row of the state). An extension
    ending in `<eos>`, or reaching max_len tokens, is a finished candidate: it leaves the batch but
    keeps its slot, so k - (number finished) beams go on. With beam_size = 1 this is greedy search;
    with beam_size >= V^max_len it keeps every sequence, as exhaustive_search does.

    Returns every finished candidate as `(tokens, score)`, best first, with the length-normalized
    score of the module docstring (tokens without the `<eos>`).
    """
    if src.shape[0] != 1:
        raise ConfigError(f"beam_search decodes one source sequence (1, T_src), got a batch of {src.shape[0]}; "
                          "call it once per sequence")
    if beam_size < 1:
        raise ConfigError(f"beam_search needs beam_size >= 1, got {beam_size}")
    valid = _check_args(src, src_valid_len, max_len, "beam_search")
    decoder = model.decoder
    candidates = []  # (tokens, sum log P, L)
    with _inference(model):
        state = decoder.init_state(model.encoder(src, valid), valid)
        Y = torch.full((1, 1), bos, dtype=torch.long, device=src.device)  # (k', 1), the last token of each beam
        tokens = torch.empty((1, 0), dtype=torch.long, device=src.device)  # (k', t)
        log_p = torch.zeros(1, device=src.device)  # (k',) sum log P of each beam
        for t in range(1, max_len + 1):
            logits, state = decoder(Y, state)  # (k', 1, V)
            V = logits.shape[-1]
            scores = log_p[:, None] + F.log_softmax(logits[:, -1].float(), dim=-1)  # (k', V)
            num_slots = beam_size - len(candidates)  # every finished candidate keeps its slot
            log_p, flat = scores.reshape(-1).topk(min(num_slots, scores.numel()))  # (k',)
            parent, token = flat // V, flat % V
            tokens = torch.cat((tokens[parent], token[:, None]), dim=1)  # (k', t)
            ended = (token == eos) if t < max_len else torch.ones_like(token, dtype=torch.bool)
            candidates += [(row, s, t) for row, s in zip(tokens[ended].tolist(), log_p[ended].tolist())]
            alive = (~ended).nonzero()[:, 0]  # (k',)
            if len(alive) == 0:
                break
            tokens, log_p, Y = tokens[alive], log_p[alive], token[alive, None]
            state = decoder.reorder_state(state, parent[alive])
    ranked = [(_cut_at_eos(row, eos), s / L ** alpha) for row, s, L in candidates]
    return sorted(ranked, key=lambda c: c[1], reverse=True)


def exhaustive_search(model: nn.Module, src: torch.Tensor, src_valid_len, bos: int, eos: int, max_len: int,
                      alpha: float = 0.75) -> list[tuple[list[int], float]]:
    """Every output sequence up to max_len tokens (book 10.8.2), scored like beam_search, best first.

    The candidates are all sequences of non-`<eos>` tokens followed by `<eos>`, up to max_len tokens,
    and all sequences of exactly max_len tokens: about V^max_len of them, so this is only for tiny
    vocabularies (at most EXHAUSTIVE_LIMIT sequences). Each length's sequences are scored
    in one teacher-forced `model(src, dec_X)` pass, independently of the decoder's step-by-step state.
    """
    if src.shape[0] != 1:
        raise ConfigError(f"exhaustive_search decodes one source sequence (1, T_src), got a batch of {src.shape[0]}")
    valid = _check_args(src, src_valid_len, max_len, "exhaustive_search")
    ranked = []
    with _inference(model):
        V = model(src, torch.full((1, 1), bos, dtype=torch.long, device=src.device), valid).shape[-1]
        # (V - 1)^(L - 1) sequences end at <eos> after L < max_len tokens; (V - 1)^(max_len - 1) V reach max_len
        total = sum((V - 1) ** (L - 1) for L in range(1, max_len)) + (V - 1) ** (max_len - 1) * V
        if total > EXHAUSTIVE_LIMIT:
            raise ConfigError(f"exhaustive_search would score {total} sequences (vocabulary {V}, max_len {max_len}); "
                              f"the limit is {EXHAUSTIVE_LIMIT}: use beam_search")
        not_eos = [v for v in range(V) if v != eos]
        for L in range(1, max_len + 1):
            last = range(V) if L == max_len else [eos]
            Y = torch.tensor([list(p) for p in itertools.product(*[not_eos] * (L - 1), last)],
                             dtype=torch.long, device=src.device)  # (N, L)
            N = Y.shape[0]
            dec_X = torch.cat((torch.full((N, 1), bos, dtype=torch.long, device=src.device), Y[:, :-1]), dim=1)
            logits = model(src.expand(N, -1), dec_X, None if valid is None else valid.expand(N))  # (N, L, V)
            log_p = F.log_softmax(logits.float(), dim=-1).gather(-1, Y[..., None])[..., 0].sum(dim=1)  # (N,)
            ranked += [(_cut_at_eos(row, eos), s / L ** alpha) for row, s in zip(Y.tolist(), log_p.tolist())]
    return sorted(ranked, key=lambda c: c[1], reverse=True)


def translate(model: nn.Module, src_tokens: list[str], src_vocab, tgt_vocab, num_steps: int, beam_size: int = 1,
              alpha: float = 0.75, device: torch.device | str | None = None):
    """Translate one tokenized sentence (book 10.7.6), greedily or with beam search.

    The source is prepared like the training data: `src_tokens + ['<eos>']`, cut or padded with
    `<pad>` to num_steps tokens; its valid length is the number of non-pad tokens. At most num_steps
    target tokens are generated. The vocabularies map tokens to indices with `vocab[tokens]` and back
    with `vocab.to_tokens(indices)`.

    Returns `(tgt_tokens, attention_weights)`: the target tokens without `<eos>`, and the decoder's
    attention weights over the source for each output token, `<eos>` included — (T_dec, T_src) for a
    decoder whose weights are a (1, T_dec, T_src) tensor — or None for a decoder without attention.
    With beam search the weights come from one teacher-forced pass over the chosen sequence.
    """
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    src = (list(src_tokens) + [EOS])[:num_steps]
    src_ids = src_vocab[src + [PAD] * (num_steps - len(src))]
    X = torch.tensor([src_ids], dtype=torch.long, device=device)  # (1, num_steps)
    valid = torch.tensor([len(src)], device=device)  # (1,)
    bos, eos = tgt_vocab[BOS], tgt_vocab[EOS]
    if beam_size == 1:
        (tokens,), weights = greedy_decode(model, X, valid, bos, eos, num_steps)
    else:
        tokens = beam_search(model, X, valid, bos, eos, num_steps, beam_size, alpha)[0][0]
        ended_at_eos = len(tokens) < num_steps
        dec_X = torch.tensor([[bos] + tokens[:len(tokens) if ended_at_eos else -1]], dtype=torch.long, device=device)
        with _inference(model):
            model(X, dec_X, valid)
        weights = model.decoder.attention_weights
    if isinstance(weights, torch.Tensor):
        weights = weights[0]  # (T_dec, T_src)
    return tgt_vocab.to_tokens(tokens), weights
