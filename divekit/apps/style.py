"""Neural style transfer (book 14.12; Gatys et al. 2016), used by the `divekit stylize` verb (divekit.cli.stylize).

The synthesized image is the only thing trained. It starts as the content image and is changed by
Adam to lower

    loss = content_weight * sum over content layers of mean((F(x) - F(content))^2)
         + style_weight * sum over style layers of mean((gram(F(x)) - gram(F(style)))^2)
         + tv_weight * tv(x)

where F(.) at a layer is the feature map of a fixed VGG-19, gram(F) = F F^T / (c h w) for the
feature map F reshaped to (c, h w), and tv(x) is the total variation of the image (mean absolute
difference of neighbouring pixels). The book's settings: style layers 0, 5, 10, 19, 28 and content
layer 25 of VGG-19's `features`, weights 1, 1e4, 10, Adam with lr 0.3 decayed by 0.8 every 50 of
500 steps, images 300 x 450.

Layer i means the first convolution's activation: the output of conv i after its ReLU (relu1_1,
relu2_1, relu3_1, relu4_1, relu5_1 for style and relu4_4 for content). That is what the book's code
effectively reads for all layers but 28: torchvision's ReLU(inplace=True) overwrites each stored
conv output with its ReLU.

The feature extractor is VGG-19 in torchvision's layout (`features.0.weight` ... `features.34.bias`),
so torchvision's ImageNet weights (a `vgg19` state dict saved as .safetensors, or as .pth read with
torch.load(weights_only=True), which never runs pickled code) load with `--weights PATH`. They cannot
be downloaded here; without them the extractor is randomly initialized (seeded). Random
convolutional features still carry some texture statistics, but the result is not the book's:
the output says which extractor was used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from ..core.errors import DivekitError
from ..train.finetune import read_pretrained

# torchvision's vgg19 (configuration "E"): channels of each 3x3 conv, "M" for a 2x2 max pool
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
STYLE_LAYERS = (0, 5, 10, 19, 28)
CONTENT_LAYERS = (25,)
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


class VGG19(nn.Module):
    """VGG-19's convolutional part with torchvision's module indices: `features[i]` is the same layer
    (conv, ReLU or max pool) as in torchvision.models.vgg19().features, so its state dict loads."""

    def __init__(self, seed: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU()]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int = 0) -> None:
        """torchvision's VGG initialization (Kaiming normal, fan_out, biases 0) from a seeded generator."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
                    m.bias.zero_()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.features(X)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: .safetensors read directly, .pt/.pth with
    torch.load(weights_only=True), which refuses files that would run code when unpickled
    (divekit.train.finetune.read_pretrained)."""
    path = Path(path)
    if not path.is_file():
        raise DivekitError(f"weights file {path} does not exist; give the path of a torchvision vgg19 state dict "
                           "(.safetensors or .pth)")
    return read_pretrained(path)[0]


def load_vgg19_weights(model: VGG19, path: str | Path) -> list[str]:
    """Load torchvision-format vgg19 weights into `model.features`; returns the names loaded.

    Accepts a whole vgg19 state dict (`features.N.*` and `classifier.*`, the latter ignored), a
    `features` state dict (`N.weight`), and the `module.` prefix that DataParallel adds.
    """
    state = read_state_dict(path)
    features = {}
    for key, value in state.items():  # ("module." prefixes are gone already)
        if key.startswith("classifier."):
            continue
        key = key.removeprefix("features.")
        features[key] = value
    own = model.features.state_dict()
    missing = [k for k in own if k not in features]
    unexpected = [k for k in features if k not in own]
    if missing or unexpected:
        raise DivekitError(f"{path} is not a torchvision vgg19 state dict: missing {missing[:4]}"
                           f"{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
                           f"{' ...' if len(unexpected) > 4 else ''} (expected features.0.weight ... features.34.bias)")
    bad = [f"{k} {tuple(features[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if features[k].shape != v.shape]
    if bad:
        raise DivekitError(f"{path} has tensors of the wrong shape for vgg19: {'; '.join(bad[:3])}")
    model.features.load_state_dict({k: features[k].float() for k in own})
    return list(own)


def feature_extractor(weights: str | Path | None = None, seed: int = 0,
                      layers: tuple[int, ...] = STYLE_LAYERS + CONTENT_LAYERS) -> tuple[nn.Sequential, str]:
    """VGG-19 `features` up to the ReLU after the last of `layers`, frozen, in eval mode, and a
    description of where its weights came from."""
    vgg = VGG19(seed)
    if weights is not None:
        load_vgg19_weights(vgg, weights)
        source = f"pretrained VGG-19 weights from {weights}"
    else:
        source = f"RANDOMLY INITIALIZED VGG-19 (seed {seed}): no --weights given, so the features are not ImageNet's"
    net = vgg.features[: max(layers) + 2]  # through the ReLU that follows the last conv used
    net.requires_grad_(False)
    return net.eval(), source


def extract_features(X: torch.Tensor, net: nn.Sequential, content_layers=CONTENT_LAYERS,
                     style_layers=STYLE_LAYERS) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(contents, styles): the activations after the ReLU of each content and style conv layer (book 14.12.4)."""
    contents, styles = [], []
    for i, layer in enumerate(net):
        X = layer(X)
        conv = i - 1  # layer i is the ReLU after conv i - 1
        if conv in content_layers:
            contents.append(X)
        if conv in style_layers:
            styles.append(X)
    return contents, styles


def content_loss(Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the feature maps (book 14.12.5.1)."""
    return ((Y_hat - Y.detach()) ** 2).mean()


def gram(X: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of a feature map (1, c, h, w): X X^T / (c h w) with X reshaped to (c, h w) (book 14.12.5.2)."""
    num_channels, n = X.shape[1], X.numel() // X.shape[1]
    X = X.reshape(num_channels, n)  # (c, h w)
    return X @ X.T / (num_channels * n)


def style_loss(Y_hat: torch.Tensor, gram_Y: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of Gram matrices."""
    return ((gram(Y_hat) - gram_Y.detach()) ** 2).mean()


def tv_loss(Y_hat: torch.Tensor) -> torch.Tensor:
    """Total variation: half the sum of the mean absolute differences between vertical and between
    horizontal neighbours (book 14.12.5.3)."""
    return 0.5 * ((Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).abs().mean()
                  + (Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).abs().mean())


@dataclass
class StyleWeights:
    content: float = 1.0
    style: float = 1e4
    tv: float = 10.0


def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram, weights: StyleWeights = StyleWeights()):
    """(content losses, style losses, tv loss, total), each weighted (book 14.12.5.4)."""
    contents_l = [content_loss(Y_hat, Y) * weights.content for Y_hat, Y in zip(contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * weights.style for Y_hat, Y in zip(styles_Y_hat, styles_Y_gram)]
    tv_l = tv_loss(X) * weights.tv
    return contents_l, styles_l, tv_l, sum(styles_l + contents_l + [tv_l])


def preprocess(img: Image.Image, shape: tuple[int, int]) -> torch.Tensor:
    """A PIL image -> (1, 3, H, W) normalized with the ImageNet mean and std, resized to shape (H, W)."""
    h, w = shape
    arr = np.asarray(img.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32) / 255
    x = torch.from_numpy(arr).permute(2, 0, 1)  # (3, H, W)
    return ((x - torch.tensor(RGB_MEAN).view(3, 1, 1)) / torch.tensor(RGB_STD).view(3, 1, 1)).unsqueeze(0)


def postprocess(X: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) normalized -> a PIL image, colors clipped to [0, 1]."""
    x = (X[0].detach().cpu() * torch.tensor(RGB_STD).view(3, 1, 1) + torch.tensor(RGB_MEAN).view(3, 1, 1)).clamp(0, 1)
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


@dataclass
class StyleResult:
    image: torch.Tensor  # (1, 3, H, W), normalized
    history: list[dict[str, float]] = field(default_factory=list)  # losses at the logged steps
    seconds: float = 0.0


def stylize(content_X: torch.Tensor, style_X: torch.Tensor, net: nn.Sequential, *, steps: int = 500, lr: float = 0.3,
            lr_decay_epoch: int = 50, weights: StyleWeights = StyleWeights(), log_every: int = 50,
            progress: bool = False) -> StyleResult:
    """Optimize an image that starts as `content_X` (book 14.12.6-7): Adam on its pixels, the
    learning rate multiplied by 0.8 every `lr_decay_epoch` steps. `history` holds the weighted
    content, style and tv losses and their total at step 0, every `log_every` steps and the last."""
    from tqdm.auto import tqdm

    contents_Y, _ = extract_features(content_X, net)
    _, styles_Y = extract_features(style_X, net)
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    X = nn.Parameter(content_X.detach().clone())
    optimizer = torch.optim.Adam([X], lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, lr_decay_epoch, 0.8)
    history, start = [], time.perf_counter()
    bar = tqdm(total=steps, desc="stylize", unit="step", disable=not progress, leave=False)
    for step in range(steps + 1):
        contents_Y_hat, styles_Y_hat = extract_features(X, net)
        contents_l, styles_l, tv_l, loss = compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                                                        weights)
        if step % log_every == 0 or step == steps:
            history.append({"step": step, "content": sum(contents_l).item(), "style": sum(styles_l).item(),
                            "tv": tv_l.item(), "loss": loss.item(), "seconds": round(time.perf_counter() - start, 2)})
            bar.set_postfix(loss=f"{history[-1]['loss']:.4g}", refresh=False)
        if step == steps:  # the last pass only measures the final image
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.update(1)
    bar.close()
    return StyleResult(X.detach(), history, time.perf_counter() - start)
