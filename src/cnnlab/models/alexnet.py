"""AlexNet: A. Krizhevsky, I. Sutskever, G. E. Hinton (2012), "ImageNet Classification with Deep Convolutional
Neural Networks", NIPS 2012; in the single-tower layout of A. Krizhevsky (2014), "One weird trick for
parallelizing convolutional neural networks", arXiv:1404.5997, which torchvision implements.

Five convolutions, overlapping 3x3/2 max-pooling (2012, Sec. 3.4) and three fully connected layers.
"""

from __future__ import annotations

from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import ConvDefaults, HeadSpec, NetworkSpec, conv, max_pool, min_input_size, stage
from cnnlab.registry import MODELS, Converter, Counts, ModelCard

# (stage name, out channels, kernel, stride, padding, followed by a 3x3/2 max-pool): torchvision 0.29.1 widths
# 64-192-384-256-256 ("one weird trick"); the 2012 network has 96-256-384-384-256 split over two GPUs
LAYERS = (
    ("conv1", 64, 11, 4, 2, True),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, False),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, True),
)
FC_WIDTHS = (4096, 4096)  # fc6, fc7 (2012, Sec. 3.5)
POOLED_SIZE = 6  # the 6x6 grid that fc6 sees at 224
DROPOUT = 0.5  # 2012, Sec. 4.2


def alexnet_spec(num_classes: int = 1000, dropout: float = DROPOUT, in_channels: int = 3) -> NetworkSpec:
    """AlexNet in torchvision's single-tower layout, as a spec."""
    stages = []
    for name, width, kernel, stride, padding, pool in LAYERS:
        stages.append(stage(name, conv(width, kernel, stride, padding)))
        if pool:
            stages.append(stage(f"pool{name[-1]}", max_pool(3, 2)))
    # dropout before fc6 and fc7, as torchvision places it (the same network at inference)
    head = HeadSpec("fc_stack", dropout, FC_WIDTHS, POOLED_SIZE, dropout_first=True)
    return NetworkSpec("alexnet", tuple(stages), head, num_classes, in_channels, conv=ConvDefaults(norm=False))


def alexnet(num_classes: int = 1000, dropout: float = DROPOUT, in_channels: int = 3) -> Network:
    """Build AlexNet in torchvision's single-tower layout."""
    return build(alexnet_spec(num_classes, dropout, in_channels))


# 63 from the spec: conv1 (11/4, pad 2) and three 3x3/2 pools: 63 -> 15 -> 7 -> 3 -> 1; 62 ends at 0
MIN_INPUT_SIZE = min_input_size(alexnet_spec())


def _torchvision_rules() -> tuple[tuple[str, str], ...]:
    """torchvision's ``features`` Sequential holds conv, relu (and a pool) per row of LAYERS."""
    rules = []
    index = 0
    for name, *_, pool in LAYERS:
        rules.append((rf"^features\.{index}\.", f"{name}.conv."))
        index += 3 if pool else 2
    # classifier: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
    return (*rules, (r"^classifier\.1\.", "head.fc6."), (r"^classifier\.4\.", "head.fc7."),
            (r"^classifier\.6\.", "head.fc."))


MODELS.register(
    ModelCard(
        name="alexnet",
        paper=("A. Krizhevsky, I. Sutskever, G. E. Hinton (2012). ImageNet Classification with Deep Convolutional "
               "Neural Networks. NIPS 2012; layout of A. Krizhevsky (2014). One weird trick for parallelizing "
               "convolutional neural networks. arXiv:1404.5997"),
        input_size=(3, 224, 224),
        reference=Counts(params=61_100_840, macs=714_188_480, source="torchvision 0.29.1 (docs/references.md)"),
        follows="torchvision 0.29.1 alexnet: the single-tower 'one weird trick' (2014) layout",
        differences=("Not the 2012 two-GPU original (96-256-384-384-256 filters with conv2/4/5 split into two "
                     "groups, local response normalisation, about 60M parameters): single tower with "
                     "64-192-384-256-256 filters, no LRN, dropout before fc6/fc7, AdaptiveAvgPool2d(6) before "
                     "fc6 so inputs >= 63 work."),
        min_input_size=MIN_INPUT_SIZE,
        family="alexnet",
        tags=("imagenet", "plain"),
        converters={"torchvision": Converter(_torchvision_rules())},
    ),
    alexnet,
    spec=alexnet_spec,
)
