"""The Penn Treebank (`ptb`): a word-level language-model corpus, or BERT pretraining pairs.

Its own module because it serves two chapters: text.py (language models) and bert.py (whose
pretraining data is built from PTB paragraphs) both sit below it.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from .bert import ptb_pretraining_bundle
from .registry import register_dataset
from .text import language_model_bundle, load_corpus


@register_dataset("ptb", defaults={"batch_size": 32, "epochs": 10}, tags=("text",))
def ptb(*, batch_size, seed, device, data_dir=None, num_steps=35, sampling="random", objective="lm", **bert_args):
    """The Penn Treebank for word-level language models: 10,000 words, its own valid and test texts.

    Mikolov's preprocessing, <eos> at the end of every sentence. objective="bert" (bert-small's
    default): BERT pretraining pairs instead, see divekit.data.bert.ptb_pretraining_bundle."""
    if objective == "bert":
        return ptb_pretraining_bundle(batch_size=batch_size, seed=seed, device=device, data_dir=data_dir, **bert_args)
    if objective != "lm" or bert_args:
        raise ConfigError(f"ptb: objective is 'lm' (language model) or 'bert'; got {objective!r}"
                          + (f" with BERT-only options {', '.join(map(repr, bert_args))}" if bert_args else ""))

    corpus, vocab = load_corpus("ptb", data_dir=data_dir)
    valid, _ = load_corpus("ptb", split="valid", data_dir=data_dir, vocab=vocab)
    test, _ = load_corpus("ptb", split="test", data_dir=data_dir, vocab=vocab)
    return language_model_bundle("ptb", corpus, vocab, batch_size=batch_size, num_steps=num_steps, sampling=sampling,
                                 seed=seed, device=device, valid_corpus=valid, test_corpus=test, level="word")
