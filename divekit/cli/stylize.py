"""`divekit stylize CONTENT STYLE`: neural style transfer (book 14.12; see divekit.apps.style)."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ConfigError
from .common import device, print_json


def add_parser(sub) -> None:
    """Register `divekit stylize`."""
    p = sub.add_parser("stylize", help="style transfer: CONTENT painted in the style of STYLE (book 14.12)",
                       description="Neural style transfer (book 14.12). Without --weights the VGG-19 feature "
                       "extractor is randomly initialized (pretrained weights cannot be downloaded by divekit); "
                       "the output says which one was used.")
    p.add_argument("content", help="content image, e.g. img/rainier.jpg from the data folder")
    p.add_argument("style", help="style image, e.g. img/autumn-oak.jpg")
    p.add_argument("--out", default="stylized.png", help="where to save the result (default: stylized.png)")
    p.add_argument("--weights", help="torchvision vgg19 state dict (.safetensors, or .pth read with weights_only)")
    p.add_argument("--steps", type=int, default=500, help="optimization steps (the book: 500)")
    p.add_argument("--size", type=int, default=300, help="height of the result; the width keeps the content "
                   "image's aspect ratio (the book: 300, giving 300 x 450 for rainier.jpg)")
    p.add_argument("--lr", type=float, default=0.3, help="Adam's learning rate (the book: 0.3)")
    p.add_argument("--lr-decay-epoch", type=int, default=50, help="multiply the lr by 0.8 every N steps")
    p.add_argument("--content-weight", type=float, default=1.0, help="weight of the content loss (the book: 1)")
    p.add_argument("--style-weight", type=float, default=1e4, help="weight of the style loss (the book: 1e4)")
    p.add_argument("--tv-weight", type=float, default=10.0, help="weight of the total variation (the book: 10)")
    p.add_argument("--seed", type=int, default=0, help="seeds the random extractor (without --weights)")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")


def run(args) -> int:
    """Stylize, save the image and print the loss history (or the JSON summary)."""
    # deferred for start-up time: style transfer needs torch and the VGG-19 extractor
    from ..apps.style import StyleWeights, feature_extractor, postprocess, preprocess, stylize
    from ..core.device import resolve_device
    from ..data.images import open_image

    if args.steps < 0 or args.size < 8 or args.lr <= 0 or args.lr_decay_epoch < 1:
        raise ConfigError("--steps must be >= 0, --size >= 8, --lr > 0 and --lr-decay-epoch >= 1")
    content_img, style_img = open_image(args.content), open_image(args.style)
    shape = (args.size, max(8, round(args.size * content_img.width / content_img.height)))
    device = resolve_device(args.device)
    net, source = feature_extractor(args.weights, args.seed)
    pretrained = args.weights is not None
    print(f"extractor: {source}", flush=True)
    net = net.to(device)
    result = stylize(preprocess(content_img, shape).to(device), preprocess(style_img, shape).to(device), net,
                     steps=args.steps, lr=args.lr, lr_decay_epoch=args.lr_decay_epoch,
                     weights=StyleWeights(args.content_weight, args.style_weight, args.tv_weight),
                     progress=not args.no_progress and not args.json)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    postprocess(result.image).save(out)
    first, last = result.history[0], result.history[-1]
    summary = {"out": str(out), "extractor": "pretrained" if pretrained else "random",
               "weights": str(args.weights) if pretrained else None, "extractor_note": source,
               "size": list(shape), "steps": args.steps, "seconds": round(result.seconds, 2),
               "initial": {k: round(v, 6) for k, v in first.items() if k not in ("step", "seconds")},
               "final": {k: round(v, 6) for k, v in last.items() if k not in ("step", "seconds")}}
    if args.json:
        print_json(summary)
        return 0
    for h in result.history:
        print(f"step {h['step']:>4d}  content {h['content']:.4g}  style {h['style']:.4g}  tv {h['tv']:.4g}  "
              f"total {h['loss']:.4g}  ({h['seconds']:.1f} s)")
    print(f"saved {out} ({shape[0]}x{shape[1]}, {args.steps} steps, {result.seconds:.1f} s); extractor: {source}")
    return 0
