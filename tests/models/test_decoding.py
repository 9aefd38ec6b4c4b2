"""Greedy, beam and exhaustive search (book 10.8) on hand-written toy decoders and on the seq2seq models."""

import math

import pytest
import torch
import torch.nn.functional as F

from divekit.core.errors import ConfigError
from divekit.data.text import Vocab
from divekit.models import create_model
from divekit.models.decoding import beam_search, exhaustive_search, greedy_decode, translate
from divekit.models.encoder_decoder import Decoder, Encoder, EncoderDecoder

pytestmark = pytest.mark.usefixtures("one_thread")

TOKENS = ["<unk>", "<pad>", "<bos>", "<eos>", "A", "B", "C"]  # the toy target vocabulary, ordered like Vocab's
UNK, PAD, BOS, EOS, A, B, C = range(len(TOKENS))
V = len(TOKENS)


def vocab(tokens):
    """A divekit Vocab with exactly this index order (the first token must be <unk>)."""
    return Vocab.from_dict({"idx_to_token": list(tokens), "min_freq": 0})


class ToyEncoder(Encoder):
    """Passes the source through, and remembers what it was given."""

    def forward(self, X, valid_lens=None):
        self.last_input = (X.clone(), None if valid_lens is None else valid_lens.clone())
        return X


class ToyDecoder(Decoder):
    """A decoder without parameters whose next-token log-probabilities are any function of the source
    row and the whole prefix decoded so far: `next_log_probs(src_row, prefix) -> (V,)`, both tuples of
    ids, the prefix without <bos>. The state is (src (B, T_src), inputs so far (B, t))."""

    def __init__(self, next_log_probs):
        super().__init__()
        self.next_log_probs = next_log_probs

    def init_state(self, enc_outputs, enc_valid_lens=None):
        return enc_outputs, enc_outputs.new_zeros((enc_outputs.shape[0], 0))

    def forward(self, X, state):
        src, inputs = state
        steps = []
        for t in range(X.shape[1]):
            inputs = torch.cat((inputs, X[:, t:t + 1]), dim=1)  # (B, t + 1), <bos> first
            steps.append(torch.stack([self.next_log_probs(tuple(s), tuple(p[1:]))
                                      for s, p in zip(src.tolist(), inputs.tolist())]))
        return torch.stack(steps, dim=1), (src, inputs)  # (B, T, V)

    def reorder_state(self, state, index):
        src, inputs = state
        return src[index], inputs[index]


def toy_model(next_log_probs) -> EncoderDecoder:
    return EncoderDecoder(ToyEncoder(), ToyDecoder(next_log_probs))


def log_probs(a=0.0, b=0.0, c=0.0, eos=0.0) -> torch.Tensor:
    """log P over the toy vocabulary: the given probabilities of A, B, C and <eos>, 0 for the rest."""
    P = torch.zeros(V)
    P[[A, B, C, EOS]] = torch.tensor([a, b, c, eos])
    return P.log()


# After the book's figures 10.8.1-10.8.2: greedy search takes A then B (0.4 > 0.3) and ends with
# A B C <eos>, P = 0.5 * 0.4 * 0.4 * 0.6 = 0.048, while A C B <eos> has P = 0.5 * 0.3 * 0.6 * 0.6 = 0.054.
# The most probable sequence of all is <eos> alone (0.1). Other prefixes go on uniformly.
BOOK_TABLE = {
    (): log_probs(0.5, 0.25, 0.15, 0.1),
    (A,): log_probs(0.15, 0.4, 0.3, 0.15),
    (A, B): log_probs(0.15, 0.25, 0.4, 0.2),
    (A, C): log_probs(0.1, 0.6, 0.1, 0.2),
    (A, B, C): log_probs(0.1, 0.2, 0.1, 0.6),
    (A, C, B): log_probs(0.2, 0.1, 0.1, 0.6),
}
UNIFORM = log_probs(0.25, 0.25, 0.25, 0.25)


def book_toy() -> EncoderDecoder:
    return toy_model(lambda src, prefix: BOOK_TABLE.get(prefix, UNIFORM))


def markov_toy(seed: int, vocab_size: int = 4) -> EncoderDecoder:
    """A random toy: the next token depends on the source's first token and the last two tokens."""
    table = torch.randn(3, vocab_size, vocab_size, vocab_size, generator=torch.Generator().manual_seed(seed)) * 2

    def next_log_probs(src, prefix):
        prev = (0, 0, *prefix)[-2:]
        return F.log_softmax(table[src[0] % 3, prev[0], prev[1]], dim=-1)

    return toy_model(next_log_probs)


SRC = torch.tensor([[0, 1, 2]])


def score(P: float, L: int, alpha: float = 0.75) -> float:
    return math.log(P) / L ** alpha


def test_book_example_greedy_is_not_optimal_and_beam_finds_the_best():
    model = book_toy()
    (greedy,), weights = greedy_decode(model, SRC, None, BOS, EOS, max_len=5)
    assert greedy == [A, B, C] and weights is None
    exhaustive = exhaustive_search(model, SRC, None, BOS, EOS, max_len=5)
    assert exhaustive[0][0] == [A, C, B]
    assert exhaustive[0][1] == pytest.approx(score(0.054, 4))  # L = 4 counts the <eos>
    assert dict((tuple(t), s) for t, s in exhaustive)[(A, B, C)] == pytest.approx(score(0.048, 4))
    assert dict((tuple(t), s) for t, s in exhaustive)[()] == pytest.approx(score(0.1, 1))  # <eos> alone
    beam = beam_search(model, SRC, None, BOS, EOS, max_len=5, beam_size=V)
    assert beam[0][0] == exhaustive[0][0] and beam[0][1] == pytest.approx(exhaustive[0][1])
    assert greedy != beam[0][0]
    greedy_beam = beam_search(model, SRC, None, BOS, EOS, max_len=5, beam_size=1)
    assert greedy_beam == [([A, B, C], pytest.approx(score(0.048, 4)))]


def test_beam_with_k_2_on_the_book_example():
    """k = 2 keeps A, C at step 1 ... the book's figure 10.8.3 walk: A C B <eos> wins, A B C <eos> is second."""
    beam = beam_search(book_toy(), SRC, None, BOS, EOS, max_len=5, beam_size=2)
    assert [t for t, _ in beam] == [[A, C, B], [A, B, C]]
    assert [s for _, s in beam] == pytest.approx([score(0.054, 4), score(0.048, 4)])


def test_without_length_normalization_the_shortest_sequence_wins():
    """alpha = 0 scores by sum log P alone, which every extra token lowers: <eos> alone (P = 0.1) wins."""
    model = book_toy()
    for search in (exhaustive_search, lambda *args, **kw: beam_search(*args, **kw, beam_size=V)):
        assert search(model, SRC, None, BOS, EOS, max_len=5, alpha=0.0)[0] == ([], pytest.approx(math.log(0.1)))
        assert search(model, SRC, None, BOS, EOS, max_len=5, alpha=0.75)[0][0] == [A, C, B]


@pytest.mark.parametrize("seed", range(4))
def test_beam_keeping_every_sequence_equals_exhaustive_search(seed):
    """With beam_size >= V^max_len no sequence is pruned: the beam's step-by-step scores (through
    reorder_state) equal the teacher-forced scores of every sequence."""
    model, max_len, vocab_size = markov_toy(seed), 3, 4
    eos = 1
    exhaustive = exhaustive_search(model, SRC, None, 0, eos, max_len)
    beam = beam_search(model, SRC, None, 0, eos, max_len, beam_size=vocab_size ** max_len)
    assert len(exhaustive) == 1 + 3 + 3 * 3 * 4  # <eos>; x <eos>; x y anything
    assert sorted(map(tuple, (t for t, _ in beam))) == sorted(map(tuple, (t for t, _ in exhaustive)))
    assert dict((tuple(t), s) for t, s in beam) == pytest.approx(dict((tuple(t), s) for t, s in exhaustive))


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_one_is_greedy_and_beam_never_loses_to_greedy(seed):
    model, eos = markov_toy(seed), 1
    (greedy,), _ = greedy_decode(model, SRC, None, 0, eos, max_len=6)
    beams = beam_search(model, SRC, None, 0, eos, max_len=6, beam_size=1)
    assert len(beams) == 1 and beams[0][0] == greedy
    best_of_3 = beam_search(model, SRC, None, 0, eos, max_len=6, beam_size=3)
    assert [s for _, s in best_of_3] == sorted((s for _, s in best_of_3), reverse=True)
    assert best_of_3[0][1] >= beams[0][1] - 1e-6


def test_greedy_batch_equals_rows_one_by_one_and_stops_at_eos():
    model, eos = markov_toy(0), 1
    src = torch.tensor([[0, 5], [1, 5], [2, 5], [4, 5]])  # the toy reads src[:, 0] % 3
    rows, _ = greedy_decode(model, src, None, 0, eos, max_len=8)
    for i, row in enumerate(rows):
        (alone,), _ = greedy_decode(model, src[i:i + 1], None, 0, eos, max_len=8)
        assert row == alone and eos not in row and len(row) <= 8


def test_translate_prepares_the_source_like_the_training_data():
    model = book_toy()
    src_vocab, tgt_vocab = vocab(["<unk>", "<pad>", "<bos>", "<eos>", "x", "y"]), vocab(TOKENS)
    tokens, weights = translate(model, ["x", "y"], src_vocab, tgt_vocab, num_steps=5)
    assert tokens == ["A", "B", "C"] and weights is None
    X, valid = model.encoder.last_input
    assert X.tolist() == [src_vocab[["x", "y", "<eos>", "<pad>", "<pad>"]]] and valid.tolist() == [3]
    assert translate(model, ["x", "y"], src_vocab, tgt_vocab, num_steps=5, beam_size=2)[0] == ["A", "C", "B"]
    translate(model, ["x"] * 7, src_vocab, tgt_vocab, num_steps=5)
    X, valid = model.encoder.last_input  # cut to num_steps, the <eos> with it, as the book's pad_or_trim does
    assert X.tolist() == [[4] * 5] and valid.tolist() == [5]


@pytest.mark.parametrize("name", ["seq2seq", "seq2seq-attention"])
def test_seq2seq_models_beam_one_is_greedy_and_full_beam_is_exhaustive(name):
    torch.manual_seed(0)
    model = create_model(name, src_vocab_size=6, tgt_vocab_size=5, embed_size=8, num_hiddens=16, num_layers=2)
    src, valid, eos = torch.tensor([[1, 2, 3, 0]]), torch.tensor([3]), 4
    (greedy,), _ = greedy_decode(model, src, valid, 0, eos, max_len=6)
    assert beam_search(model, src, valid, 0, eos, max_len=6, beam_size=1)[0][0] == greedy
    exhaustive = exhaustive_search(model, src, valid, 0, eos, max_len=3)
    beam = beam_search(model, src, valid, 0, eos, max_len=3, beam_size=5 ** 3)
    assert dict((tuple(t), s) for t, s in beam) == pytest.approx(dict((tuple(t), s) for t, s in exhaustive), abs=1e-5)


def test_translate_attention_weights_cover_each_output_step_and_skip_padding():
    torch.manual_seed(0)
    src_vocab = vocab(["<unk>", "<pad>", "<bos>", "<eos>", "x", "y", "z"])
    tgt_vocab = vocab(TOKENS)
    model = create_model("seq2seq-attention", src_vocab_size=len(src_vocab), tgt_vocab_size=V,
                         embed_size=8, num_hiddens=16, num_layers=1)
    with torch.no_grad():
        model.decoder.dense.bias[EOS] += 2.0  # make the untrained model stop, so the <eos> step shows up
    for beam_size in (1, 3):
        tokens, weights = translate(model, ["x", "z"], src_vocab, tgt_vocab, num_steps=6, beam_size=beam_size)
        ended_at_eos = len(tokens) < 6
        assert weights.shape == (len(tokens) + ended_at_eos, 6)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(len(weights)))
        assert (weights[:, 3:] == 0).all()  # "x z <eos>" is 3 tokens; the rest is padding


def test_errors_name_the_input():
    model = book_toy()
    with pytest.raises(ConfigError, match="one source sequence"):
        beam_search(model, torch.zeros(2, 3, dtype=torch.long), None, BOS, EOS, 3, beam_size=2)
    with pytest.raises(ConfigError, match="beam_size"):
        beam_search(model, SRC, None, BOS, EOS, 3, beam_size=0)
    with pytest.raises(ConfigError, match="integer dtype"):
        greedy_decode(model, SRC.float(), None, BOS, EOS, 3)
    with pytest.raises(ConfigError, match="src_valid_len"):
        greedy_decode(model, SRC, torch.tensor([3, 3]), BOS, EOS, 3)
    with pytest.raises(ConfigError, match="use beam_search"):
        exhaustive_search(model, SRC, None, BOS, EOS, max_len=12)
