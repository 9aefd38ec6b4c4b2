"""Image I/O and the batched augmentations (book 14.1), against hand-computed values and colorsys."""

import colorsys

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from divekit.core.errors import DataError
from divekit.data import transforms as T
from divekit.data.images import read_image, save_image, show_images


def batch(n=4, c=3, h=6, w=8, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# -- image files --------------------------------------------------------------------------------

def test_read_save_round_trip_rgb_and_gray(tmp_path):
    img = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path = save_image(img, tmp_path / "a.png")
    back = read_image(path)
    assert back.dtype == torch.uint8 and back.shape == (3, 5, 7)
    assert torch.equal(back, img)  # PNG is lossless
    gray = read_image(path, mode="L")
    assert gray.shape == (1, 5, 7)
    # pillow's L = (299 R + 587 G + 114 B) / 1000, rounded
    expected = (img[0].int() * 299 + img[1].int() * 587 + img[2].int() * 114 + 500) // 1000
    assert (gray[0].int() - expected).abs().max() <= 1
    assert read_image(path, size=(10, 14)).shape == (3, 10, 14)
    # a float image in [0, 1] saves as its 8-bit rounding
    save_image(torch.full((1, 2, 2), 0.5), tmp_path / "g.png")
    assert read_image(tmp_path / "g.png", "L").unique().tolist() == [128]


def test_unreadable_files_raise_a_data_error_naming_them(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)  # a JPEG header, then nothing
    for name in ("notes.txt", "broken.jpg", "missing.png"):
        with pytest.raises(DataError, match=name):
            read_image(tmp_path / name)


def test_show_images_grid(tmp_path):
    from divekit.core.plot import save_figure

    fig = show_images(batch(5), 2, 3, titles=list("abcde"))
    assert len(fig.axes) == 6
    assert save_figure(fig, tmp_path / "grid.png").stat().st_size > 1000


# -- flips and crops ----------------------------------------------------------------------------

def test_flips_are_exact_and_per_image():
    x = batch(64)
    g = torch.Generator().manual_seed(1)
    for aug, dim in ((T.random_hflip(), -1), (T.random_vflip(), -2)):
        y = aug(x, g)
        flipped = torch.tensor([torch.equal(y[i], x[i].flip(dim)) for i in range(len(x))])
        kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
        assert bool((flipped | kept).all())
        assert 16 < int(flipped.sum()) < 48  # about half, chosen per image
    assert torch.equal(T.random_vflip(p=1.0)(x), x.flip(-2))
    assert torch.equal(T.random_vflip(p=0.0)(x), x)


def test_resized_crop_whole_image_is_identity_and_halving_averages_2x2():
    x = batch(3, h=8, w=8)
    whole = torch.tensor([[0, 0, 8, 8]] * 3)
    assert torch.allclose(T.resized_crop(x, whole, 8), x, atol=1e-6)
    # box (top 2, left 0, 4 x 6) shrunk to 2 x 3: each output pixel is the mean of a 2x2 block
    box = torch.tensor([[2, 0, 4, 6]] * 3)
    out = T.resized_crop(x, box, (2, 3))
    expected = F.avg_pool2d(x[:, :, 2:6, 0:6], 2)
    assert torch.allclose(out, expected, atol=1e-6)


def test_resized_crop_matches_crop_then_interpolate_inside():
    x = batch(2, h=12, w=16)
    boxes = torch.tensor([[1, 2, 6, 8], [3, 5, 9, 10]])
    out = T.resized_crop(x, boxes, 18)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = F.interpolate(x[i:i + 1, :, top:top + h, left:left + w], size=(18, 18), mode="bilinear",
                            align_corners=False)
        # away from the border (where grid_sample reads neighbours outside the box) they agree
        assert torch.allclose(out[i, :, 2:-2, 2:-2], ref[0, :, 2:-2, 2:-2], atol=1e-5)


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    g = torch.Generator().manual_seed(0)
    boxes = T.random_resized_crop_boxes(2000, 100, 120, scale=(0.1, 1.0), ratio=(0.5, 2.0), g=g)
    top, left, h, w = boxes.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 100) & (left + w <= 120)).all())
    area = h * w / (100 * 120)
    assert area.min() > 0.09 and area.max() <= 1.0
    aspect = w / h
    assert aspect.min() > 0.45 and aspect.max() < 2.2  # rounding to whole pixels stretches it slightly
    # boxes that cannot fit fall back to the whole image (clipped to the ratio range), centered
    fallback = T.random_resized_crop_boxes(3, 10, 100, scale=(1.0, 1.0), ratio=(1.0, 1.0), g=g)
    assert fallback.tolist() == [[0, 45, 10, 10]] * 3
    out = T.random_resized_crop(32, scale=(0.1, 1.0), ratio=(0.5, 2))(batch(5, h=40, w=50), g)
    assert out.shape == (5, 3, 32, 32)


# -- color --------------------------------------------------------------------------------------

def test_brightness_contrast_saturation_by_hand():
    x = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    assert torch.allclose(T.adjust_brightness(x, 1.5), x * 1.5)
    assert torch.allclose(T.adjust_brightness(x, 3.0).amax(), torch.tensor(1.0))  # clipped
    gray = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6
    assert torch.allclose(T.adjust_saturation(x, 0.0), torch.full_like(x, gray))
    assert torch.allclose(T.adjust_saturation(x, 0.5), 0.5 * x + 0.5 * gray)
    # contrast blends with the image's mean gray level (here: every pixel has the same gray)
    assert torch.allclose(T.adjust_contrast(x, 0.0), torch.full_like(x, gray))
    # per-image factors
    two = torch.cat([x, x])
    out = T.adjust_brightness(two, torch.tensor([0.5, 2.0]))
    assert torch.allclose(out[0], x[0] * 0.5) and torch.allclose(out[1], (x[0] * 2).clamp(max=1))


def test_hue_shift_of_pure_red():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    for shift, rgb in ((1 / 3, (0, 1, 0)), (-1 / 3, (0, 0, 1)), (1 / 6, (1, 1, 0)), (0.5, (0, 1, 1))):
        assert torch.allclose(T.adjust_hue(red, shift).flatten(), torch.tensor(rgb, dtype=torch.float), atol=1e-6)
    gray = torch.full((1, 3, 2, 2), 0.3)
    assert torch.allclose(T.adjust_hue(gray, 0.25), gray)


def test_hsv_matches_colorsys_and_round_trips():
    x = batch(2, h=5, w=5, seed=3)
    hsv = T.rgb_to_hsv(x)
    for n, i, j in ((0, 0, 0), (0, 2, 3), (1, 4, 1), (1, 3, 3)):
        expected = colorsys.rgb_to_hsv(*x[n, :, i, j].tolist())
        assert torch.allclose(hsv[n, :, i, j], torch.tensor(expected, dtype=torch.float), atol=1e-6)
    assert torch.allclose(T.hsv_to_rgb(hsv), x, atol=1e-6)
    shifted = T.adjust_hue(x, 0.2)
    for n, i, j in ((0, 1, 1), (1, 2, 4)):
        h, s, v = colorsys.rgb_to_hsv(*x[n, :, i, j].tolist())
        expected = colorsys.hsv_to_rgb((h + 0.2) % 1, s, v)
        assert torch.allclose(shifted[n, :, i, j], torch.tensor(expected, dtype=torch.float), atol=1e-5)


def test_color_jitter_factors_are_drawn_per_image_within_range():
    x = torch.full((200, 3, 2, 2), 0.5)
    out = T.color_jitter(brightness=0.5)(x, torch.Generator().manual_seed(0))
    factors = out[:, 0, 0, 0] / 0.5
    assert factors.min() >= 0.5 - 1e-6 and factors.max() <= 1.5 + 1e-6
    assert factors.std() > 0.2  # uniform on [0.5, 1.5] has std 0.29
    with pytest.raises(ValueError, match="hue"):
        T.color_jitter(hue=0.7)
    with pytest.raises(TypeError, match="to_float"):
        T.color_jitter(brightness=0.1)(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_composed_pipeline_is_deterministic_for_a_seed():
    x = batch(6, h=20, w=24)
    aug = T.compose(T.random_hflip(), T.color_jitter(0.5, 0.5, 0.5, 0.5), T.random_resized_crop(16, (0.1, 1), (0.5, 2)))
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert a.shape == (6, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_augment_demo_writes_the_book_grids(shared_data, monkeypatch, tmp_path):
    from divekit.book.demos import run_demo

    monkeypatch.setenv("DIVEKIT_DATA", str(shared_data))
    result = run_demo("augment", tmp_path)
    assert set(result["plots"]) == {"hflip", "vflip", "resized-crop", "brightness", "hue", "color", "combined"}
    for path in result["plots"].values():
        assert Image.open(path).size[0] > 300
