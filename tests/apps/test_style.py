"""Neural style transfer (book 14.12): Gram matrix and total variation by hand, the torchvision VGG-19
layout, weight files, falling losses, and `divekit stylize`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from divekit.apps.style import (
    VGG19,
    StyleWeights,
    compute_loss,
    content_loss,
    extract_features,
    feature_extractor,
    gram,
    load_vgg19_weights,
    postprocess,
    preprocess,
    style_loss,
    stylize,
    tv_loss,
)
from divekit.cli import main
from divekit.core.errors import DivekitError
from divekit.core.io import save

pytestmark = pytest.mark.usefixtures("one_thread")

# torchvision.models.vgg19().features: the indices of its 16 convolutions
TORCHVISION_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_gram_matrix_by_hand():
    X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [-1.0, 2.0]]]])  # (1, c=2, h=2, w=2)
    # rows x0 = (1, 2, 3, 4), x1 = (0, 1, -1, 2): x0.x0 = 30, x0.x1 = 7, x1.x1 = 6; divided by c * h * w = 8
    torch.testing.assert_close(gram(X), torch.tensor([[30.0, 7.0], [7.0, 6.0]]) / 8)
    # style loss: the mean squared difference of the Gram matrices
    assert float(style_loss(X, torch.zeros(2, 2))) == pytest.approx((30 ** 2 + 2 * 7 ** 2 + 6 ** 2) / 64 / 4)


def test_total_variation_by_hand():
    Y = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 0.0]]]])  # (1, 1, 2, 3)
    # vertical |diffs| 2, 1, 3: mean 2; horizontal 1, 2, 0, 2: mean 1.25; tv = (2 + 1.25) / 2
    assert float(tv_loss(Y)) == pytest.approx(1.625)
    assert float(content_loss(Y, torch.zeros_like(Y))) == pytest.approx((0 + 1 + 9 + 4 + 4 + 0) / 6)


@pytest.fixture(scope="module")
def vgg():
    return VGG19(seed=0)


@pytest.fixture(scope="module")
def tv_state():
    """A state dict laid out as torchvision's vgg19().state_dict() (random values, seed 1)."""
    state = dict(VGG19(seed=1).state_dict())
    state["classifier.0.weight"] = torch.zeros(4, 2)  # a whole vgg19 state dict has the classifier too
    return state


def test_vgg19_state_dict_has_torchvisions_names_and_shapes(vgg):
    state = vgg.state_dict()
    assert list(state) == [f"features.{i}.{p}" for i in TORCHVISION_CONVS for p in ("weight", "bias")]
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.28.weight"].shape == (512, 512, 3, 3)
    assert state["features.34.bias"].shape == (512,)
    assert len(vgg.features) == 37  # 16 convs + 16 ReLUs + 5 max pools, as torchvision's


def test_weights_load_from_safetensors_and_pth_and_bad_files_are_refused(tmp_path, tv_state):
    state = tv_state
    save(state, tmp_path / "vgg19.safetensors")
    torch.save(state, tmp_path / "vgg19.pth")
    vgg = VGG19(seed=0)
    for name in ("vgg19.safetensors", "vgg19.pth"):
        vgg.features[28].weight.data.zero_()
        load_vgg19_weights(vgg, tmp_path / name)
        torch.testing.assert_close(vgg.features[28].weight, state["features.28.weight"])
    features_only = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    torch.save(features_only, tmp_path / "features.pth")
    vgg.features[0].bias.data.fill_(7)
    load_vgg19_weights(vgg, tmp_path / "features.pth")
    torch.testing.assert_close(vgg.features[0].bias, state["features.0.bias"])

    torch.save({"net": object()}, tmp_path / "pickle.pth")  # not loadable with weights_only
    with pytest.raises(DivekitError, match="weights_only"):
        load_vgg19_weights(vgg, tmp_path / "pickle.pth")
    broken = dict(state)
    broken["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(DivekitError, match="wrong shape"):
        load_vgg19_weights(vgg, tmp_path / "broken.pth")
    with pytest.raises(DivekitError, match="not a torchvision vgg19"):
        torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
        load_vgg19_weights(vgg, tmp_path / "resnet.pth")


def test_extractor_reads_the_relu_after_each_layer_and_is_frozen():
    net, source = feature_extractor(seed=0)
    assert "RANDOMLY INITIALIZED" in source and len(net) == 30  # through the ReLU after conv 28
    assert not any(p.requires_grad for p in net.parameters())
    X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    contents, styles = extract_features(X, net)
    assert len(contents) == 1 and len(styles) == 5
    torch.testing.assert_close(styles[0], net[:2](X))  # relu1_1
    torch.testing.assert_close(styles[1], net[:7](X))  # relu2_1
    torch.testing.assert_close(contents[0], net[:27](X))  # relu4_4
    assert [s.shape[1] for s in styles] == [64, 128, 256, 512, 512]
    # the same seed gives the same extractor
    torch.testing.assert_close(feature_extractor(seed=0)[0][0].weight, net[0].weight)


def _images(h=24, w=32):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    content = torch.stack([yy, xx, 1 - yy])  # smooth gradients
    style = (torch.rand(3, h // 4, w // 4, generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2))  # blocks
    return [Image.fromarray((t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for t in (content, style)]


def test_losses_fall_over_a_few_steps_on_tiny_images():
    # Random features are far smaller than ImageNet-trained ones, so at the book's style weight (1e4)
    # the style term is ~1e-3 of the total; 1e8 gives it the weight it has with pretrained features.
    net, _ = feature_extractor(seed=0)
    content, style = _images()
    content_X, style_X = preprocess(content, (24, 32)), preprocess(style, (24, 32))
    weights = StyleWeights(content=1.0, style=1e8, tv=10.0)
    result = stylize(content_X, style_X, net, steps=8, lr=0.05, log_every=4, weights=weights)
    first, last = result.history[0], result.history[-1]
    assert [h["step"] for h in result.history] == [0, 4, 8]
    assert first["content"] == 0.0 and last["content"] > 0  # the image starts as the content image
    assert last["loss"] < 0.8 * first["loss"]
    assert last["style"] < 0.8 * first["style"]
    contents_Y, _ = extract_features(content_X, net)
    contents_hat, styles_hat = extract_features(result.image, net)
    _, styles_Y = extract_features(style_X, net)
    *_, total = compute_loss(result.image, contents_hat, styles_hat, contents_Y, [gram(Y) for Y in styles_Y],
                             weights)
    assert float(total) == pytest.approx(last["loss"], rel=1e-4)
    img = postprocess(result.image)
    assert img.size == (32, 24) and img.mode == "RGB"


def test_stylize_verb_says_which_extractor_it_used(tmp_path, capsys, tv_state):
    content, style = _images()
    content.save(tmp_path / "content.png")
    style.save(tmp_path / "style.jpg")
    out = tmp_path / "result.png"
    code = main(["stylize", str(tmp_path / "content.png"), str(tmp_path / "style.jpg"), "--out", str(out),
                 "--steps", "3", "--size", "24", "--style-weight", "1e8", "--lr", "0.05", "--json"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "RANDOMLY INITIALIZED VGG-19" in stdout
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["extractor"] == "random" and result["weights"] is None and result["size"] == [24, 32]
    assert result["final"]["loss"] < result["initial"]["loss"]
    assert Image.open(out).size == (32, 24)

    weights = tmp_path / "vgg19.safetensors"
    save(tv_state, weights)
    code = main(["stylize", str(tmp_path / "content.png"), str(tmp_path / "style.jpg"), "--out", str(out),
                 "--steps", "1", "--size", "16", "--weights", str(weights), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["extractor"] == "pretrained" and result["weights"] == str(weights)

    assert main(["stylize", str(tmp_path / "missing.png"), str(tmp_path / "style.jpg")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_books_images_load(shared_data, tmp_path, capsys):
    content, style = shared_data / "img" / "rainier.jpg", shared_data / "img" / "autumn-oak.jpg"
    if not (content.is_file() and style.is_file()):
        pytest.skip(f"the book's images are not in {shared_data / 'img'}")
    code = main(["stylize", str(content), str(style), "--out", str(tmp_path / "r.png"), "--steps", "1", "--size", "20",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["size"] == [20, 30]  # rainier.jpg is 2048 x 1365, the book's 300 x 450 at this height
