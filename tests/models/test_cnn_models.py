"""Every image model in the registry builds, runs forward and backward, and the CNNs match the book's sizes."""

import pytest
import torch
import torch.nn as nn

import divekit
from divekit.core.errors import ConfigError
from divekit.models import create_model, list_models

# The smallest square image each architecture takes (the tests run at these to stay fast);
# models not listed take 28x28 Fashion-MNIST images.
# GoogLeNet and ResNet take any size (every pool is padded); 16x16 keeps a few pixels after the stem.
TEST_SIZES = {
    "alexnet": 65, "nin": 67, "vgg11": 32, "vgg11-small": 32, "densenet": 29,
    "googlenet": 16, "resnet18": 16, "resnet18-cifar": 16, "resnet34": 16, "resnet50": 16,
}

CNNS = ["lenet", "lenet-modern", "lenet-bn", "lenet-bn-concise", "alexnet", "vgg11", "vgg11-small", "nin",
        "googlenet", "resnet18", "resnet18-cifar", "resnet34", "resnet50", "densenet", "fastnet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, size: int | None = None) -> nn.Module:
    size = size or TEST_SIZES.get(name, 28)
    return create_model(name, context={"num_classes": 10, "in_shape": (1, size, size)})


def test_every_cnn_is_registered_as_an_image_model():
    assert set(CNNS) <= set(divekit.list_models(tag="image"))
    assert set(CNNS) == set(list_models(tag="cnn"))


@pytest.mark.parametrize("name", list_models(tag="image"))
def test_image_model_forward_backward(name):
    torch.manual_seed(0)
    size = TEST_SIZES.get(name, 28)
    model = build(name)
    X, y = torch.randn(2, 1, size, size), torch.tensor([3, 7])

    logits = model(X)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"

    model.eval()
    with torch.no_grad():
        assert torch.equal(model(X), model(X)), f"{name} is not deterministic in eval mode"


# Counted by hand for 1-channel inputs and 10 classes (weights + biases; batch norm: gamma + beta):
#   lenet      conv 6*25+6, conv 16*6*25+16, dense 400*120+120, 120*84+84, 84*10+10
#   lenet-bn   the same but the first dense layer sees 16*4*4 = 256, plus 2*(6+16+120+84) for BN
#   alexnet    convs 11,712 + 614,656 + 885,120 + 1,327,488 + 884,992; dense 6400*4096+4096, 4096^2+4096, 40,970
#   vgg11      convs 9,219,328; dense 25088*4096+4096, 4096^2+4096, 40,970
#   resnet18   stem 3,328; stages 148,224 + 525,952 + 2,100,480 + 8,395,264; dense 5,130
#   densenet   stem 3,328; dense blocks 130,048 + 167,168 + 185,728 + 195,008; transitions 18,912 + 25,648 + 29,400; last 2,986
PARAMS = [
    ("lenet", 28, 61_706), ("lenet-modern", 28, 61_706), ("lenet-bn", 28, 44_878), ("lenet-bn-concise", 28, 44_878),
    ("alexnet", 224, 46_764_746), ("vgg11", 224, 128_806_154), ("vgg11-small", 224, 43_093_322),
    ("nin", 224, 1_992_166), ("googlenet", 96, 5_977_530), ("resnet18", 96, 11_178_378), ("densenet", 96, 758_226),
]


@pytest.mark.parametrize("name,size,expected", PARAMS)
def test_parameter_counts_match_the_book(name, size, expected):
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = build(name, size)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_resnet_deeper_variants():
    with torch.device("meta"):
        r34, r50 = build("resnet34", 96), build("resnet50", 96)
    assert len([m for m in r34.modules() if isinstance(m, nn.Conv2d)]) == 1 + 2 * (3 + 4 + 6 + 3) + 3  # + 3 shortcuts
    assert len([m for m in r50.modules() if isinstance(m, nn.Conv2d)]) == 1 + 3 * (3 + 4 + 6 + 3) + 4
    assert r50.net.last[-1].in_features == 2048


def d2l_resnet18(num_classes: int, in_channels: int) -> nn.Sequential:
    """The book's d2l.resnet18 (13.6), as the book writes it: a 3x3 stem and four resnet_blocks."""
    from divekit.models.layers import Residual

    def resnet_block(in_ch, out_ch, num_residuals, first_block=False):
        return nn.Sequential(*[Residual(in_ch, out_ch, use_1x1conv=True, strides=2) if i == 0 and not first_block
                               else Residual(out_ch, out_ch) for i in range(num_residuals)])

    return nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        resnet_block(64, 64, 2, first_block=True), resnet_block(64, 128, 2), resnet_block(128, 256, 2),
        resnet_block(256, 512, 2), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, num_classes))


def test_resnet18_cifar_is_the_books_d2l_resnet18():
    torch.manual_seed(0)
    ours = create_model("resnet18-cifar", context={"num_classes": 10, "in_shape": (3, 32, 32)})
    book = d2l_resnet18(10, 3)
    ours_state, book_state = ours.state_dict(), book.state_dict()
    assert [v.shape for v in ours_state.values()] == [v.shape for v in book_state.values()]
    book.load_state_dict(dict(zip(book_state, ours_state.values())))
    X = torch.randn(4, 3, 32, 32)
    shapes, Y = [], X
    with torch.no_grad():
        for blk in ours.eval().net:
            Y = blk(Y)
            shapes.append(tuple(Y.shape))
    assert shapes == [(4, 64, 32, 32), (4, 64, 32, 32), (4, 128, 16, 16), (4, 256, 8, 8), (4, 512, 4, 4), (4, 10)]
    ours.train(), book.train()
    out_ours, out_book = ours(X), book(X)
    torch.testing.assert_close(out_ours, out_book)
    out_ours.square().sum().backward(), out_book.square().sum().backward()
    torch.testing.assert_close(ours.net.b1[0].weight.grad, book[0].weight.grad)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in book.parameters()) == 11_176_970


def test_book_output_shapes():
    X = torch.zeros(1, 1, 224, 224)
    alexnet = build("alexnet", 224).eval()
    with torch.no_grad():
        assert alexnet.net[:13](X).shape == (1, 256, 5, 5)  # before Flatten
    resnet = build("resnet18", 96).eval()
    X = torch.zeros(1, 1, 96, 96)
    shapes = []
    with torch.no_grad():
        for blk in resnet.net:
            X = blk(X)
            shapes.append(tuple(X.shape))
    assert shapes == [(1, 64, 24, 24), (1, 64, 24, 24), (1, 128, 12, 12), (1, 256, 6, 6), (1, 512, 3, 3), (1, 10)]


def test_model_built_for_one_size_fails_in_forward_on_another():
    model = build("lenet", 28)
    with pytest.raises(RuntimeError):  # what the trainer's preflight turns into "choose another --resize"
        model(torch.zeros(1, 1, 20, 20))


def test_too_small_input_shape_is_a_config_error():
    with pytest.raises(ConfigError, match="alexnet.*--resize"):
        create_model("alexnet", in_shape=(1, 64, 64))
    build("alexnet", 65)


def test_building_leaves_batch_norm_statistics_untouched():
    model = build("lenet-bn-concise")
    bn = model.net[1]
    assert torch.equal(bn.running_mean, torch.zeros(6)) and bn.num_batches_tracked.item() == 0
    assert model.training


def test_checkpoint_loads_into_a_fresh_model():
    torch.manual_seed(0)
    model = build("lenet-bn")
    model(torch.randn(4, 1, 28, 28))  # moves the moving averages away from 0 and 1
    state = model.state_dict()
    assert "net.1.moving_mean" in state and "net.1.moving_var" in state
    fresh = build("lenet-bn")
    fresh.load_state_dict(state)
    X = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(X), fresh.eval()(X))
