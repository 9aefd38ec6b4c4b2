"""divekit.data: TensorLoader, split, batched transforms, idx parsing, the dataset registry.

Everything runs on the CPU, offline. Tests that need the real Fashion-MNIST / MNIST files use the
`shared_data` fixture (they skip when the folder is absent).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import idx_bytes, write_idx
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.core.errors import ConfigError, DataError
from divekit.data import hub
from divekit.data.loader import TensorLoader, split
from divekit.data.registry import DataBundle, list_datasets, load_dataset
from divekit.data.synthetic import synthetic_linear
from divekit.data.transforms import compose, image_transform, normalize, random_crop, random_hflip, resize, to_float
from divekit.data.vision import FASHION_MNIST_CLASSES, load_digits_tensors, read_idx, read_idx_pair

FAST = settings(max_examples=25, deadline=None)


def collect(loader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t.clone() for t in batch) for batch in loader]


def order_of(loader) -> list[int]:
    """The example indices a loader over (arange(n),) yields, in order."""
    return torch.cat([b[0] for b in loader]).tolist()


# --------------------------------------------------------------------------------------------
# TensorLoader
# --------------------------------------------------------------------------------------------


@FAST
@given(n=st.integers(1, 200), batch_size=st.integers(1, 64), drop_last=st.booleans(), shuffle=st.booleans())
def test_loader_batch_count_and_sizes(n, batch_size, drop_last, shuffle):
    x = torch.arange(n)
    loader = TensorLoader(x, batch_size=batch_size, drop_last=drop_last, shuffle=shuffle)
    sizes = [len(b[0]) for b in loader]
    full, rest = divmod(n, batch_size)
    expected = [batch_size] * full + ([] if drop_last or rest == 0 else [rest])
    assert sizes == expected
    assert len(loader) == len(expected)
    assert sum(sizes) == (full * batch_size if drop_last else n)


def test_loader_without_shuffle_yields_original_order_as_views():
    x = torch.arange(23 * 3, dtype=torch.float32).view(23, 3)
    y = torch.arange(23)
    loader = TensorLoader(x, y, batch_size=5)
    batches = list(loader)
    assert len(batches) == 5
    assert torch.equal(torch.cat([b[0] for b in batches]), x)
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    for i, (bx, by) in enumerate(batches):
        # slices of the original storage, no copy
        assert bx.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        assert by.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()
        assert bx.data_ptr() == x[i * 5].data_ptr()
        assert by.data_ptr() == y[i * 5].data_ptr()


@FAST
@given(n=st.integers(1, 300), batch_size=st.integers(1, 50), seed=st.integers(0, 2**16), epoch=st.integers(0, 100))
def test_loader_shuffle_is_a_permutation(n, batch_size, seed, epoch):
    loader = TensorLoader(torch.arange(n), batch_size=batch_size, shuffle=True, seed=seed)
    loader.set_epoch(epoch)
    order = order_of(loader)
    assert sorted(order) == list(range(n))


def test_loader_shuffle_keeps_tensors_aligned():
    x = torch.arange(50) * 10
    y = torch.arange(50)
    loader = TensorLoader(x, y, batch_size=7, shuffle=True, seed=3)
    for bx, by in loader:
        assert torch.equal(bx, by * 10)


def test_loader_same_seed_and_epoch_same_order_other_epoch_differs():
    x = torch.arange(100)
    a = TensorLoader(x, batch_size=16, shuffle=True, seed=7)
    b = TensorLoader(x, batch_size=16, shuffle=True, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    order_a = order_of(a)
    assert order_a == order_of(b)
    assert order_a == order_of(a)  # iterating again: the same epoch's order
    assert order_a != list(range(100))  # actually shuffled
    b.set_epoch(4)
    assert order_of(b) != order_a
    c = TensorLoader(x, batch_size=16, shuffle=True, seed=8)
    c.set_epoch(3)
    assert order_of(c) != order_a


def test_loader_transform_receives_each_batch_and_a_generator():
    x = torch.arange(20, dtype=torch.float32).view(10, 2)
    y = torch.arange(10)
    seen = []

    def transform(batch, g):
        assert isinstance(g, torch.Generator)
        seen.append(tuple(t.clone() for t in batch))
        return (batch[0] * -1, batch[1] + 100)

    loader = TensorLoader(x, y, batch_size=4, transform=transform)
    out = list(loader)
    assert len(seen) == len(out) == 3
    assert torch.equal(torch.cat([s[0] for s in seen]), x)
    assert torch.equal(torch.cat([s[1] for s in seen]), y)
    assert torch.equal(torch.cat([o[0] for o in out]), -x)
    assert torch.equal(torch.cat([o[1] for o in out]), y + 100)


def test_loader_augmentation_is_reproducible_per_epoch():
    x = torch.zeros(40, 3)

    def noisy(batch, g):
        return (batch[0] + torch.rand(batch[0].shape, generator=g), *batch[1:])

    loader = TensorLoader(x, batch_size=8, shuffle=True, transform=noisy, seed=1)
    loader.set_epoch(2)
    first, second = collect(loader), collect(loader)
    assert len(first) == 5
    for a, b in zip(first, second):
        assert torch.equal(a[0], b[0])
    # the noise is real and varies between batches and between epochs
    assert not torch.equal(first[0][0], first[1][0])
    loader.set_epoch(3)
    third = collect(loader)
    assert not torch.equal(torch.cat([b[0] for b in first]), torch.cat([b[0] for b in third]))


@FAST
@given(n=st.integers(2, 120), batch_size=st.integers(1, 16), seed=st.integers(0, 1000), epoch=st.integers(0, 20))
def test_loader_sharding_two_ranks(n, batch_size, seed, epoch):
    x = torch.arange(n)
    ranks = [TensorLoader(x, batch_size=batch_size, shuffle=True, seed=seed, rank=r, world_size=2) for r in (0, 1)]
    single = TensorLoader(x, batch_size=batch_size, shuffle=True, seed=seed, rank=0, world_size=1)
    for loader in (*ranks, single):
        loader.set_epoch(epoch)
    r0, r1 = order_of(ranks[0]), order_of(ranks[1])
    per_rank = n // 2
    assert len(r0) == len(r1) == per_rank
    assert ranks[0].num_examples == ranks[1].num_examples == per_rank
    assert len(ranks[0]) == len(ranks[1]) == -(-per_rank // batch_size)
    assert not set(r0) & set(r1)
    # both ranks cut their share from the one permutation of this (seed, epoch)
    perm = order_of(single)
    assert sorted(perm) == list(range(n))
    assert r0 + r1 == perm[: 2 * per_rank]


def test_loader_sharding_without_shuffle():
    x = torch.arange(11)
    r0 = order_of(TensorLoader(x, batch_size=3, rank=0, world_size=2))
    r1 = order_of(TensorLoader(x, batch_size=3, rank=1, world_size=2))
    assert r0 == [0, 1, 2, 3, 4]
    assert r1 == [5, 6, 7, 8, 9]


def test_loader_ranks_augment_differently():
    x = torch.zeros(8, 2)

    def noisy(batch, g):
        return (batch[0] + torch.rand(batch[0].shape, generator=g),)

    a = collect(TensorLoader(x, batch_size=4, transform=noisy, rank=0, world_size=2))
    b = collect(TensorLoader(x, batch_size=4, transform=noisy, rank=1, world_size=2))
    assert not torch.equal(a[0][0], b[0][0])


def test_loader_rejects_tensors_of_different_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        TensorLoader(torch.zeros(5), torch.zeros(6), batch_size=2)


def test_loader_rejects_no_tensors():
    with pytest.raises(ValueError):
        TensorLoader(batch_size=2)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_loader_rejects_batch_size_below_one(batch_size):
    with pytest.raises(ConfigError, match="batch size"):
        TensorLoader(torch.zeros(5), batch_size=batch_size)


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_device_cpu(shuffle):
    x = torch.arange(10, dtype=torch.float64)
    loader = TensorLoader(x, x * 2, batch_size=4, device="cpu", shuffle=shuffle)
    assert loader.device == torch.device("cpu")
    batches = list(loader)
    assert all(t.device.type == "cpu" for b in batches for t in b)
    got = torch.cat([b[0] for b in batches])
    assert sorted(got.tolist()) == x.tolist()
    assert torch.equal(torch.cat([b[1] for b in batches]), got * 2)


# --------------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------------


@FAST
@given(n=st.integers(0, 500), fractions=st.sampled_from([[0.8, 0.2], [0.5, 0.5], [0.7, 0.2, 0.1], [1.0], [0.1, 0.9]]),
       seed=st.integers(0, 1000))
def test_split_disjoint_covering_and_sized(n, fractions, seed):
    parts = split(n, fractions, seed=seed)
    assert len(parts) == len(fractions)
    flat = torch.cat(parts).tolist()
    assert sorted(flat) == list(range(n))  # disjoint and covering
    for part, f in zip(parts[:-1], fractions[:-1]):
        assert len(part) == round(f * n)
    assert len(parts[-1]) == n - sum(len(p) for p in parts[:-1])
    again = split(n, fractions, seed=seed)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))


def test_split_depends_on_seed():
    a = split(100, [0.5, 0.5], seed=0)
    b = split(100, [0.5, 0.5], seed=1)
    assert not torch.equal(a[0], b[0])
    assert [len(p) for p in a] == [50, 50]


# --------------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------------


def test_to_float_maps_uint8_to_unit_range():
    x = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, torch.tensor([[[[0.0, 0.2, 1.0]]]]))
    assert y[0, 0, 0, 2].item() == 1.0
    assert x.dtype == torch.uint8 and x[0, 0, 0, 2] == 255  # input untouched


def test_to_float_leaves_floats_alone():
    x = torch.rand(2, 1, 3, 3) * 7
    y = to_float(x)
    assert y.dtype == x.dtype
    assert torch.equal(y, x)


@pytest.mark.parametrize("size, shape", [(32, (32, 32)), (14, (14, 14)), ((20, 36), (20, 36))])
def test_resize_shape(size, shape):
    x = torch.rand(3, 2, 28, 28)
    assert resize(size)(x).shape == (3, 2, *shape)


def test_resize_same_size_is_noop():
    x = torch.rand(2, 1, 28, 28)
    assert resize(28)(x) is x
    assert resize((28, 28))(x) is x


def test_resize_matches_bilinear_interpolate():
    x = torch.rand(4, 3, 28, 28)
    up = resize(32)(x)
    assert torch.allclose(up, F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False))
    down = resize(14)(x)
    ref = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(down, ref)
    # a constant image stays constant whichever way it is resized
    c = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(resize(32)(c), torch.full((1, 1, 32, 32), 0.3))
    assert torch.allclose(resize(9)(c), torch.full((1, 1, 9, 9), 0.3))


def test_normalize_per_channel():
    x = torch.rand(5, 3, 4, 4)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.4, 0.8]
    y = normalize(mean, std)(x)
    for c in range(3):
        assert torch.allclose(y[:, c], (x[:, c] - mean[c]) / std[c])


def test_random_hflip_extremes():
    x = torch.rand(6, 2, 5, 7)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_hflip(1.0)(x, g), x.flip(-1))
    assert torch.equal(random_hflip(0.0)(x, g), x)


def test_random_hflip_half():
    x = torch.rand(1000, 1, 4, 5)
    y = random_hflip(0.5)(x, torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    flipped = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # each image is exactly one of the two
    assert 400 <= int(flipped.sum()) <= 600


def _padded(x, padding):
    return F.pad(x, (padding,) * 4) if padding else x


@FAST
@given(size=st.integers(1, 8), padding=st.integers(0, 3), seed=st.integers(0, 10_000))
def test_random_crop_windows(size, padding, seed):
    x = torch.rand(4, 2, 6, 8) + 0.5  # strictly positive, so the zero padding is recognizable
    h, w = 6 + 2 * padding, 8 + 2 * padding
    crop = random_crop(size, padding)
    if size > min(h, w):
        with pytest.raises(ValueError):
            crop(x, torch.Generator().manual_seed(seed))
        return
    y = crop(x, torch.Generator().manual_seed(seed))
    assert y.shape == (4, 2, size, size)
    p = _padded(x, padding)
    for i in range(len(x)):
        matches = [
            (top, left)
            for top in range(h - size + 1)
            for left in range(w - size + 1)
            if torch.equal(y[i], p[i, :, top : top + size, left : left + size])
        ]
        assert matches, f"crop {i} is not a window of the padded image"
    # the same generator seed gives the same crops
    assert torch.equal(y, crop(x, torch.Generator().manual_seed(seed)))


def test_random_crop_varies_positions():
    x = torch.rand(64, 1, 8, 8)
    y = random_crop(8, padding=2)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    p = _padded(x, 2)
    positions = set()
    for i in range(len(x)):
        for top in range(5):
            for left in range(5):
                if torch.equal(y[i], p[i, :, top : top + 8, left : left + 8]):
                    positions.add((top, left))
    assert len(positions) > 5  # not always the same window
    z = random_crop(8, padding=2)(x, torch.Generator().manual_seed(1))
    assert not torch.equal(y, z)


def test_compose_applies_in_order():
    x = torch.ones(1, 1, 2, 2)
    add = lambda t, g=None: t + 1  # noqa: E731
    dbl = lambda t, g=None: t * 2  # noqa: E731
    assert torch.equal(compose(add, dbl)(x), torch.full_like(x, 4))
    assert torch.equal(compose(dbl, add)(x), torch.full_like(x, 3))
    assert torch.equal(compose()(x), x)


def test_image_transform_maps_only_first_tensor():
    x = torch.full((3, 1, 2, 2), 255, dtype=torch.uint8)
    y = torch.tensor([1, 2, 3])
    extra = torch.tensor([7.0, 8.0, 9.0])
    got = image_transform(to_float, lambda t, g=None: t * 2)((x, y, extra), torch.Generator())
    assert len(got) == 3
    assert torch.equal(got[0], torch.full((3, 1, 2, 2), 2.0))
    assert got[1] is y and got[2] is extra


def test_image_transform_passes_generator():
    x = torch.rand(50, 1, 3, 3)
    t = image_transform(random_hflip(0.5))
    a = t((x,), torch.Generator().manual_seed(5))[0]
    b = t((x,), torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, x) and not torch.equal(a, x.flip(-1))


# --------------------------------------------------------------------------------------------
# idx files
# --------------------------------------------------------------------------------------------


@FAST
@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=3), gz=st.booleans(), seed=st.integers(0, 1000))
def test_read_idx_round_trip(tmp_path_factory, shape, gz, seed):
    array = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    path = write_idx(tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx"), array, gz)
    got = read_idx(path, len(shape))
    assert got.dtype == torch.uint8
    assert tuple(got.shape) == tuple(shape)
    assert np.array_equal(got.numpy(), array)


def test_read_idx_accepts_str_path(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = write_idx(tmp_path / "b.gz", array, gz=True)
    assert np.array_equal(read_idx(str(path), 2).numpy(), array)


def assert_data_error_names(path: Path, ndim: int, match: str | None = None):
    with pytest.raises(DataError) as info:
        read_idx(path, ndim)
    assert str(path) in str(info.value)
    if match:
        assert match in str(info.value)


def test_read_idx_truncated_gzip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=(20, 8, 8), dtype=np.uint8)
    path = tmp_path / "trunc.gz"
    full = gzip.compress(idx_bytes(array))
    path.write_bytes(full[: len(full) // 2])
    assert_data_error_names(path, 3, "corrupt or truncated")


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "plain-but-named.gz"
    path.write_bytes(idx_bytes(np.zeros((2, 2, 2))))
    assert_data_error_names(path, 3)


@pytest.mark.parametrize(
    "magic",
    [
        struct.pack(">HBB", 1, 0x08, 3),  # first two bytes not zero
        struct.pack(">HBB", 0, 0x09, 3),  # not uint8
        struct.pack(">HBB", 0, 0x08, 2),  # wrong number of dimensions
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_wrong_magic(tmp_path, magic, gz):
    body = struct.pack(">3I", 2, 2, 2) + bytes(8)
    path = tmp_path / ("m.gz" if gz else "m.idx")
    path.write_bytes(gzip.compress(magic + body) if gz else magic + body)
    assert_data_error_names(path, 3, "magic number")


@pytest.mark.parametrize("delta", [-1, 1, -7])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_header_disagrees_with_length(tmp_path, delta, gz):
    data = idx_bytes(np.zeros((3, 2, 2)))
    data = data[:delta] if delta < 0 else data + bytes(delta)
    path = tmp_path / ("h.gz" if gz else "h.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    assert_data_error_names(path, 3, "promises")


@pytest.mark.parametrize("nbytes", [0, 3, 4, 15])
def test_read_idx_too_short(tmp_path, nbytes):
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(np.zeros((1, 1, 1)))[:nbytes])
    assert_data_error_names(path, 3, "too short")


def test_read_idx_missing_file_is_data_error(tmp_path):
    assert_data_error_names(tmp_path / "nope.gz", 1)


def test_read_idx_huge_header_is_data_error(tmp_path):
    path = tmp_path / "huge.idx"
    path.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 2**22, 2**21, 2**21))
    assert_data_error_names(path, 3)


def test_read_idx_pair(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    x, y = read_idx_pair(write_idx(tmp_path / "x.gz", images, True), write_idx(tmp_path / "y.gz", labels, True))
    assert x.shape == (5, 1, 4, 3) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    assert np.array_equal(x[:, 0].numpy(), images)


def test_read_idx_pair_count_mismatch(tmp_path):
    xp = write_idx(tmp_path / "x.gz", np.zeros((5, 2, 2)), True)
    yp = write_idx(tmp_path / "y.gz", np.zeros(4), True)
    with pytest.raises(DataError, match="5 images.*4 labels"):
        read_idx_pair(xp, yp)


def test_read_idx_pair_label_out_of_range(tmp_path):
    xp = write_idx(tmp_path / "x.gz", np.zeros((3, 2, 2)), True)
    yp = write_idx(tmp_path / "y.gz", np.array([0, 10, 2]), True)
    with pytest.raises(DataError, match="label 10") as info:
        read_idx_pair(xp, yp)
    assert str(yp) in str(info.value)
    # with more classes the same labels are fine; with fewer, a smaller label is rejected
    assert read_idx_pair(xp, yp, num_classes=11)[1].tolist() == [0, 10, 2]
    yp2 = write_idx(tmp_path / "y2.gz", np.array([0, 1, 2]), True)
    with pytest.raises(DataError, match="label 2"):
        read_idx_pair(xp, yp2, num_classes=2)


def test_read_idx_pair_empty(tmp_path):
    xp = write_idx(tmp_path / "x.gz", np.zeros((0, 2, 2)), True)
    yp = write_idx(tmp_path / "y.gz", np.zeros(0), True)
    with pytest.raises(DataError, match="no examples"):
        read_idx_pair(xp, yp)


# --------------------------------------------------------------------------------------------
# real Fashion-MNIST / MNIST
# --------------------------------------------------------------------------------------------


@pytest.fixture
def real_data(shared_data, monkeypatch):
    monkeypatch.setenv("DIVEKIT_DATA", str(shared_data))
    return shared_data


def test_fashion_mnist(real_data):
    bundle = load_dataset("fashion-mnist", batch_size=256, data_dir=str(real_data))
    assert isinstance(bundle, DataBundle)
    assert bundle.task == "classification"
    assert bundle.train.num_examples == 60000 and bundle.test.num_examples == 10000
    assert bundle.classes == FASHION_MNIST_CLASSES
    assert len(bundle.classes) == 10 and bundle.classes[0] == "t-shirt" and bundle.classes[-1] == "ankle boot"
    assert bundle.context == {"num_classes": 10, "in_shape": (1, 28, 28)}
    for loader, total in ((bundle.train, 60000), (bundle.test, 10000)):
        seen = 0
        counts = torch.zeros(10, dtype=torch.long)
        for i, (x, y) in enumerate(loader):
            if i < len(loader) - 1:
                assert x.shape == (256, 1, 28, 28)
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
            assert int(y.min()) >= 0 and int(y.max()) <= 9
            counts += torch.bincount(y, minlength=10)
            seen += len(x)
        assert seen == total
        assert counts.tolist() == [total // 10] * 10  # Fashion-MNIST is exactly balanced
    # the train loader shuffles (reproducibly per epoch), the test loader keeps the file order
    y_train = bundle.train.tensors[1]
    first = next(iter(bundle.train))[1]
    assert not torch.equal(first, y_train[:256])
    assert torch.equal(first, next(iter(bundle.train))[1])
    bundle.train.set_epoch(1)
    assert not torch.equal(first, next(iter(bundle.train))[1])
    x, y = next(iter(bundle.test))
    assert torch.equal(y, bundle.test.tensors[1][:256])
    assert int(y[0]) == 9 and bundle.classes[int(y[0])] == "ankle boot"
    assert float(x.max()) == 1.0  # uint8 255 became exactly 1


def test_fashion_mnist_uses_env_data_dir(real_data):
    bundle = load_dataset("fashion-mnist", batch_size=100)
    assert bundle.test.num_examples == 10000
    assert int(next(iter(bundle.test))[1][0]) == 9


def test_fashion_mnist_resize(real_data):
    bundle = load_dataset("fashion-mnist", batch_size=64, resize=32, data_dir=str(real_data))
    assert bundle.context == {"num_classes": 10, "in_shape": (1, 32, 32)}
    for loader in (bundle.train, bundle.test):
        x, y = next(iter(loader))
        assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32
        assert y.shape == (64,)
    plain = load_dataset("fashion-mnist", batch_size=64, data_dir=str(real_data))
    x28 = next(iter(plain.test))[0]
    x32 = next(iter(bundle.test))[0]
    assert torch.allclose(x32, F.interpolate(x28, size=(32, 32), mode="bilinear", align_corners=False))


def test_mnist(real_data):
    bundle = load_dataset("mnist", batch_size=256, data_dir=str(real_data))
    assert bundle.train.num_examples == 60000 and bundle.test.num_examples == 10000
    assert bundle.classes == [str(i) for i in range(10)]
    assert bundle.context == {"num_classes": 10, "in_shape": (1, 28, 28)}
    x, y = next(iter(bundle.train))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    for labels in (bundle.train.tensors[1], bundle.test.tensors[1]):
        assert int(labels.min()) == 0 and int(labels.max()) == 9
        assert bool((torch.bincount(labels, minlength=10) > 0).all())
    assert int(bundle.test.tensors[1][0]) == 7  # MNIST's first test digit is a 7
    resized = load_dataset("mnist", batch_size=32, resize=32, data_dir=str(real_data))
    assert resized.context["in_shape"] == (1, 32, 32)
    assert next(iter(resized.train))[0].shape == (32, 1, 32, 32)


def test_real_file_truncated_is_data_error(shared_data, tmp_path):
    src = shared_data / "MNIST" / "raw"
    dst = tmp_path / "MNIST" / "raw"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    bad = dst / "train-images-idx3-ubyte.gz"
    bad.unlink()
    data = (src / bad.name).read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert str(bad) in str(info.value)
    with pytest.raises(DataError) as info:
        read_idx(bad, 3)
    assert str(bad) in str(info.value)


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def _rows(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """One hashable (pixels, label) row per example."""
    flat = torch.cat([x.flatten(1), y.view(-1, 1).to(torch.uint8)], 1).numpy()
    return [r.tobytes() for r in flat]


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The rows `sklearn.datasets.load_digits()` returns (images 0..16, target), parsed here with the csv
    module from scikit-learn's digits.csv.gz, without importing scikit-learn (seconds of imports)."""
    import csv
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-learn is not installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.array([[float(v) for v in row] for row in csv.reader(f) if row])
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def test_digits_tensors_match_sklearn():
    images, target = _sklearn_digits()
    assert images.shape == (1797, 8, 8) and images.max() == 16
    x_tr, y_tr, x_te, y_te = load_digits_tensors()
    assert len(x_tr) + len(x_te) == 1797
    assert (len(x_tr), len(x_te)) == (1438, 359)
    assert x_tr.shape[1:] == (1, 8, 8) and x_te.shape[1:] == (1, 8, 8)
    for x in (x_tr, x_te):
        assert x.dtype == torch.uint8
    assert int(torch.cat([x_tr, x_te]).max()) == 255 and int(torch.cat([x_tr, x_te]).min()) == 0
    assert y_tr.dtype == torch.int64 and int(y_tr.min()) == 0 and int(y_tr.max()) == 9
    ref_x = torch.from_numpy(np.rint(images * (255 / 16)).astype(np.uint8))
    ref = _rows(ref_x, torch.from_numpy(target))
    assert len(set(ref)) == 1797  # every (image, label) row is unique, so rows identify examples
    train, test = _rows(x_tr, y_tr), _rows(x_te, y_te)
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(ref)


def test_digits_split_is_stable():
    first = load_digits_tensors()
    load_digits_tensors.cache_clear()
    second = load_digits_tensors()
    assert first is not second
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_load_digits_needs_no_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVEKIT_DATA", str(tmp_path / "missing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise AssertionError("digits must not touch the data hub")

    monkeypatch.setattr(hub, "fetch", no_network)
    monkeypatch.setattr(hub, "download", no_network)
    bundle = load_dataset("digits", batch_size=64)
    assert bundle.context == {"num_classes": 10, "in_shape": (1, 8, 8)}
    assert bundle.train.num_examples + bundle.test.num_examples == 1797
    x, y = next(iter(bundle.train))
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert not (tmp_path / "missing").exists()


# --------------------------------------------------------------------------------------------
# synthetic-linear
# --------------------------------------------------------------------------------------------


def _lstsq(x, y):
    a = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    sol = torch.linalg.lstsq(a, y.double()).solution.flatten()
    return sol[:-1], sol[-1]


def test_synthetic_linear_recovers_parameters():
    bundle = load_dataset("synthetic-linear")
    assert bundle.task == "regression"
    x, y = bundle.train.tensors
    assert x.shape == (1000, 2) and y.shape == (1000, 1)
    assert bundle.test.tensors[0].shape == (1000, 2) and bundle.test.tensors[1].shape == (1000, 1)
    for xs, ys in (bundle.train.tensors, bundle.test.tensors):
        w, b = _lstsq(xs, ys)
        assert torch.allclose(w, torch.tensor([2.0, -3.4], dtype=torch.float64), atol=0.01)
        assert abs(float(b) - 4.2) < 0.01
    assert torch.equal(bundle.context["true_w"], torch.tensor([2.0, -3.4]))
    assert bundle.context["true_b"] == 4.2


def test_synthetic_linear_function_is_seeded():
    a = synthetic_linear(seed=3)
    b = synthetic_linear(seed=3)
    c = synthetic_linear(seed=4)
    assert all(torch.equal(s, t) for s, t in zip(a[:4], b[:4]))
    assert not torch.equal(a[0], c[0])
    x, y, _, _, w, bias = synthetic_linear(w=(1.0, 2.0, 3.0), b=-1.0, noise=0.0, num_train=10, num_test=5)
    assert x.shape == (10, 3) and y.shape == (10, 1)
    assert torch.allclose(y, x @ w.view(3, 1) + bias, atol=1e-5)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_list_datasets():
    names = list_datasets()
    for name in ("digits", "fashion-mnist", "mnist", "synthetic-linear"):
        assert name in names
    assert names == sorted(names)
    assert "fashion-mnist" in list_datasets("*mnist") and "digits" not in list_datasets("*mnist")


def test_unknown_dataset_suggests_closest():
    with pytest.raises(ConfigError, match="Did you mean 'fashion-mnist'") as info:
        load_dataset("fashion-mnst")
    assert "'fashion-mnst'" in str(info.value)


def test_resize_on_synthetic_linear_is_config_error():
    with pytest.raises(ConfigError, match="image datasets") as info:
        load_dataset("synthetic-linear", resize=32)
    assert "resize" in str(info.value)


def test_unknown_dataset_option_is_config_error():
    with pytest.raises(ConfigError, match="bogus"):
        load_dataset("digits", bogus=1)


def test_decoded_idx_files_are_cached_and_rebuilt_when_stale_or_corrupt(tmp_path, monkeypatch):
    import os

    from divekit.data import cache, vision

    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 4, 4)), rng.integers(0, 10, 6), rng.integers(0, 256, (3, 4, 4)),
              rng.integers(0, 10, 3)]
    paths = tuple(write_idx(raw / f"{i}.gz", a, gz=True) for i, a in enumerate(arrays))
    first = vision.load_idx_set.__wrapped__(paths)

    def entry():
        return cache.entry_path("decoded", "FashionMNIST", [cache.stamp(p) for p in paths])

    cached = entry()
    assert cached.is_file() and cached.parent.name == "decoded" and cached.name.startswith("FashionMNIST-")

    decodes = []
    real = vision.read_idx_pair
    monkeypatch.setattr(vision, "read_idx_pair", lambda *a: decodes.append(a) or real(*a))
    again = vision.load_idx_set.__wrapped__(paths)  # from the cache: no decoding
    assert decodes == [] and all(torch.equal(a, b) for a, b in zip(first, again))
    assert torch.equal(again[0][:, 0], torch.from_numpy(arrays[0].astype(np.uint8)))

    cached.write_bytes(cached.read_bytes()[:100])  # a truncated cache file is decoded and written again
    assert all(torch.equal(a, b) for a, b in zip(first, vision.load_idx_set.__wrapped__(paths)))
    assert len(decodes) == 2 and cached.stat().st_size > 100

    write_idx(paths[0], arrays[0][::-1].copy(), gz=True)  # the source changed: a new key, new tensors
    os.utime(paths[0], ns=(1, 1))
    changed = vision.load_idx_set.__wrapped__(paths)
    assert entry() != cached
    assert torch.equal(changed[0][:, 0], torch.from_numpy(arrays[0][::-1].astype(np.uint8)))

    n = len(decodes)  # a decoder that changed (cache.FORMAT bumped) never reads an older decoder's entry
    monkeypatch.setattr(cache, "FORMAT", cache.FORMAT + 1)
    vision.load_idx_set.__wrapped__(paths)
    assert len(decodes) == n + 2 and entry().is_file()
