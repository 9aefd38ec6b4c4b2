"""`--data folder:PATH`: the user's own images, one sub-folder per class, written here by the tests."""

import json
import random
import warnings
import zipfile

import pytest
import torch
from PIL import Image, ImageDraw

from divekit.cli import main
from divekit.core.errors import DataError
from divekit.data import folder as folder_mod
from divekit.data import hub, load_dataset


def draw_shapes(root, per_class=40, size=32, seed=0):
    """An easy task: a filled circle or a filled square of a random color and size on a random dark
    background; plus a corrupt JPEG and a text file among the images and a stray file at the top."""
    rng = random.Random(seed)
    for cls in ("circle", "square"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            bg = tuple(rng.randrange(0, 90) for _ in range(3))
            fg = tuple(rng.randrange(140, 256) for _ in range(3))
            img = Image.new("RGB", (size, size), bg)
            r = rng.randrange(8, 14)
            cx, cy = rng.randrange(r, size - r), rng.randrange(r, size - r)
            box = (cx - r, cy - r, cx + r, cy + r)
            draw = ImageDraw.Draw(img)
            (draw.ellipse if cls == "circle" else draw.rectangle)(box, fill=fg)
            img.save(root / cls / f"{i:03d}.{'png' if i % 3 else 'jpg'}")
    (root / "circle" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(40))
    (root / "square" / "notes.txt").write_text("these are squares")
    (root / "README.txt").write_text("my shapes")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_folder_is_decoded_once_skipping_and_reporting_bad_files(tmp_path, cache, monkeypatch):
    root = draw_shapes(tmp_path / "shapes", per_class=10)
    with pytest.warns(UserWarning, match=r"skipped 3 file\(s\)") as record:
        data = load_dataset(f"folder:{root}", batch_size=8, resize=24)
    message = str(record[0].message)
    for name in ("corrupt.jpg", "notes.txt", "README.txt"):
        assert name in message
    assert data.classes == ["circle", "square"] and data.task == "classification"
    assert data.context["in_shape"] == (3, 24, 24) and data.context["num_classes"] == 2
    assert data.context["skipped_files"] == 3
    assert data.test is None
    n_train, n_valid = data.train.num_examples, data.valid.num_examples
    assert (n_train, n_valid) == (16, 4)  # 20 readable images, never the 3 bad files; 20% validation
    x, y = next(iter(data.train))
    assert x.dtype == torch.float32 and x.shape[1:] == (3, 24, 24) and 0 <= x.min() and x.max() <= 1
    assert len(list((cache / "folders").glob("shapes-24px-3ch-*.safetensors"))) == 1

    # the second load reads the cache: decoding is not called again, same tensors
    monkeypatch.setattr(folder_mod, "read_image", lambda *a, **k: pytest.fail("decoded again"))
    with pytest.warns(UserWarning, match="skipped 3"):
        again = load_dataset(f"folder:{root}", batch_size=8, resize=24)
    assert torch.equal(again.train.tensors[0], data.train.tensors[0])
    assert torch.equal(again.valid.tensors[1], data.valid.tensors[1])


def test_changed_folder_is_decoded_again_and_options_apply(tmp_path, cache):
    root = draw_shapes(tmp_path / "shapes", per_class=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y, classes, skipped = folder_mod.decode_folder(root, size=16)
        Image.new("RGB", (20, 20), (255, 0, 0)).save(root / "square" / "new.png")
        x2, y2, _, _ = folder_mod.decode_folder(root, size=16)
        gray = load_dataset(f"folder:{root}", batch_size=4, size=20, channels=1, valid=0.5)
    assert x.shape == (12, 3, 16, 16) and x.dtype == torch.uint8
    assert y.tolist() == [0] * 6 + [1] * 6 and len(skipped) == 3
    assert x2.shape[0] == 13 and y2.tolist().count(1) == 7
    assert gray.context["in_shape"] == (1, 20, 20)
    assert gray.train.num_examples == 7 and gray.valid.num_examples == 6  # round(0.5 * 13) held out


@pytest.mark.parametrize("layout, match", [
    ({}, "no such folder"),
    ({"only": ["a.png"]}, "at least 2 classes"),
    ({"cats": ["a.png"], "dogs": ["x.txt"]}, r"\['dogs'\] hold no readable image"),
])
def test_bad_folders_get_clear_errors(tmp_path, cache, layout, match):
    root = tmp_path / "data"
    if layout:
        for cls, names in layout.items():
            (root / cls).mkdir(parents=True)
            for name in names:
                if name.endswith(".png"):
                    Image.new("RGB", (4, 4)).save(root / cls / name)
                else:
                    (root / cls / name).write_text("hello")
    with pytest.raises(DataError, match=match):
        load_dataset(f"folder:{root}", batch_size=4)
    with pytest.raises(DataError, match="unknown data option"):
        folder_mod.load_folder_dataset(f"folder:{root}", batch_size=4, sizes=3)


def test_train_on_a_folder_end_to_end_then_predict(tmp_path, cache, capsys, one_thread):
    """A real (tiny) training run from the command line: squares vs circles, >= 90% validation accuracy."""
    root = draw_shapes(tmp_path / "shapes", per_class=60)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped 3"):
        assert main(["train", "lenet-modern", "--data", f"folder:{root}", "--resize", "32", "--epochs", "12",
                     "--batch-size", "16", "--optimizer", "adam", "--lr", "0.003", "--out", str(out), "--no-progress",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["data"] == f"folder:{root}"
    assert result["valid_acc"] >= 0.9, result
    assert json.loads((out / "config.json").read_text())["data"] == f"folder:{root}"
    images = [str(root / "square" / "001.png"), str(root / "circle" / "002.png")]
    assert main(["predict", str(out), *images, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert [r["top"][0]["class"] for r in rows] == ["square", "circle"]
    with pytest.warns(UserWarning, match="skipped 3"):  # eval reports on the folder's validation split
        assert main(["eval", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["split"] == "valid" and report["valid_acc"] == pytest.approx(result["valid_acc"], abs=0.03)


def zip_folder(root, archive, prefix="", extra=None):
    """Zip every file under `root` as prefix + its relative path, plus the `extra` members."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + str(f.relative_to(root)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


def cache_entries(cache):
    return sorted(p.name for p in (cache / "folders").iterdir()) if (cache / "folders").exists() else []


@pytest.mark.parametrize("prefix", ["", "shapes/"])
def test_zip_archive_of_class_folders_is_extracted_once_into_the_cache(tmp_path, cache, monkeypatch, prefix):
    root = draw_shapes(tmp_path / "shapes", per_class=6)
    archive = zip_folder(root, tmp_path / "photos.zip", prefix, {"__MACOSX/circle/._000.png": b"\0\5\x16\7"})
    with pytest.warns(UserWarning, match=r"skipped 3 file\(s\)"):
        data = load_dataset(f"folder:{archive}", batch_size=4, resize=16)
    assert data.classes == ["circle", "square"] and data.train.num_examples + data.valid.num_examples == 12
    digest = hub.file_hash(archive, "sha1")[:16]
    extracted = cache / "folders" / f"zip-photos-{digest}"
    assert sorted(p.name for p in extracted.iterdir()) == (["shapes"] if prefix else ["README.txt", "circle", "square"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y, _, _ = folder_mod.decode_folder(root, size=16)
        monkeypatch.setattr(hub, "extract", lambda *a, **k: pytest.fail("extracted again"))
        x2, y2, _, _ = folder_mod.decode_folder(archive, size=16)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_zip_bombs_and_escaping_members_are_refused_before_writing(tmp_path, cache, monkeypatch):
    root = draw_shapes(tmp_path / "shapes", per_class=3)
    bomb = zip_folder(root, tmp_path / "bomb.zip", extra={"square/huge.png": bytes(hub.RATIO_MIN_BYTES + (1 << 20))})
    with pytest.raises(DataError, match=r"refusing to extract .*bomb\.zip: member 'square/huge\.png' expands \d+:1"):
        load_dataset(f"folder:{bomb}", batch_size=4)
    escape = zip_folder(root, tmp_path / "escape.zip", extra={"../evil.png": b"evil"})
    with pytest.raises(DataError, match=r"member '\.\./evil\.png' has an absolute path or '\.\.'"):
        load_dataset(f"folder:{escape}", batch_size=4)
    monkeypatch.setenv("DIVEKIT_MAX_EXTRACT_BYTES", "2K")
    plain = zip_folder(root, tmp_path / "plain.zip")
    with pytest.raises(DataError, match=r"more than the size limit of 2\.0 KiB;.*DIVEKIT_MAX_EXTRACT_BYTES"):
        load_dataset(f"folder:{plain}", batch_size=4)
    assert cache_entries(cache) == []  # no extracted folder, no staging folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip", "cache", "escape.zip", "plain.zip", "shapes"]

    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(DataError, match="is a file but not a zip archive"):
        load_dataset(f"folder:{tmp_path / 'notes.txt'}", batch_size=4)


def test_folder_runs_get_a_readable_default_folder_name():
    from divekit.train.api import default_run_dir, resolve_config
    from divekit.train.config import TrainConfig

    path = default_run_dir(TrainConfig(model="mlp", data="folder:/home/me/my photos/"))
    assert path.parent.name == "runs" and path.name.startswith("mlp-folder-my photos-")
    assert resolve_config(model="mlp", data="folder:/x").batch_size == 32  # the folder datasets' default
