"""Every registered dataset loads: from what divekit embeds or generates, or from the real copy in
../shared/data; the few whose files are not there have a loader test on a fixture in their real
layout, named here (and checked to exist)."""

import importlib
from pathlib import Path

import pytest

from divekit.data import list_datasets, load_dataset

TESTS = Path(__file__).resolve().parents[1]

# datasets that need no file: small options so each loads in well under a second
EMBEDDED = {
    "digits": {}, "synthetic-linear": {}, "gaussian-2d": {}, "hours-to-pass": {}, "breast-cancer": {},
    "bananas-synthetic": {"num_train": 8, "num_val": 4, "image_size": 32},
    "shapes-segmentation": {"num_train": 8, "num_valid": 4, "size": 32},
}
# datasets read from the real copy of the download cache (../shared/data)
REAL = {
    "fashion-mnist": {}, "mnist": {}, "airfoil": {}, "time-machine": {}, "ptb": {}, "fra-eng": {},
    "kaggle-house": {}, "ptb-bshift": {"num_train": 16, "num_test": 16},
}
# datasets whose files are not in ../shared/data: the test that loads a fixture in their layout
FIXTURE_TESTS = {
    "voc2012": "tasks/test_segmentation.py::test_voc_loader_on_a_fixture_in_the_real_layout",
    "wikitext-2": "data/test_bert_data.py::test_read_wiki_from_the_wikitext2_layout",
    "snli-bert": "data/test_bert_data.py::test_snli_bert_from_the_snli_layout",
    "banana-detection": "models/test_ssd.py::test_banana_detection_reads_an_extracted_archive_in_the_data_folder",
    "cifar10": "data/test_cifar.py::test_archive_round_trip_in_the_official_layout",
    "kaggle-cifar10": "data/test_cifar.py::test_kaggle_layout_reads_labels_by_class_name",
}


def test_every_registered_dataset_is_covered_here():
    covered = set(EMBEDDED) | set(REAL) | set(FIXTURE_TESTS)
    assert sorted(set(list_datasets()) - covered) == [], "add the new dataset to one of the tables above"
    assert sorted(covered - set(list_datasets())) == []


@pytest.mark.parametrize("name", sorted(FIXTURE_TESTS))
def test_the_named_fixture_test_exists(name):
    path, test = FIXTURE_TESTS[name].split("::")
    module = importlib.import_module(str(Path(path).with_suffix("")).replace("/", "."))
    assert callable(getattr(module, test, None)), f"{FIXTURE_TESTS[name]} does not exist"


TRAIN_ONLY = {"hours-to-pass", "airfoil", "gaussian-2d"}  # the book fits these toy sets and reports the training loss only


def _check(bundle):
    batch = next(iter(bundle.train))
    assert len(bundle.train) >= 1 and len(batch) >= (1 if bundle.task == "gan" else 2)  # a GAN's data: no labels
    assert batch[0].shape[0] >= 1
    held_out = bundle.loaders().keys() - {"train"}
    assert bool(held_out) != (bundle.name in TRAIN_ONLY), f"{bundle.name}: held-out splits {sorted(held_out)}"


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_and_generated_datasets_load(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path))
    _check(load_dataset(name, batch_size=4, data_dir=str(tmp_path), **EMBEDDED[name]))


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_datasets_load_from_the_data_cache(name, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path))
    _check(load_dataset(name, batch_size=8, data_dir=str(shared_data), **REAL[name]))


def test_kaggle_house_trains_as_a_registered_dataset(shared_data, tmp_path):
    import divekit as dk

    result = dk.train(model="linear-regression", data="kaggle-house", epochs=3, data_dir=str(shared_data),
                      out=str(tmp_path / "run"), progress=False)
    history = result.history
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]  # the standardized price: it learns
