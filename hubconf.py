"""torch.hub entry points: every cnnlab zoo model, built from a clone of this repository.

    model = torch.hub.load("path/to/cnnlab", "resnet20", source="local")             # a local clone
    model = torch.hub.load("path/to/cnnlab", "resnet50", source="local", num_classes=10, in_chans=1)

The entry points are the names of ``cnnlab models`` (``cnnlab.list_models()``).

The models come with random weights (cnnlab ships none): ``pretrained=True`` raises and says how to load
torchvision's or timm's (``cnnlab.models.from_torchvision`` / ``from_timm``).
"""

from __future__ import annotations

import sys
from pathlib import Path

dependencies = ["torch"]  # torch.hub checks that these import before it calls an entry point

_SRC = Path(__file__).resolve().parent / "src"
if "cnnlab" not in sys.modules and _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))  # the clone's own cnnlab (src layout), also when it is not pip-installed

from cnnlab.models import create_model, list_models, model_card  # noqa: E402


def _entry(name: str):  # noqa: ANN202
    def entry(pretrained: bool = False, **options):  # noqa: ANN202
        return create_model(name, pretrained=pretrained, **options)

    card = model_card(name)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (f"{name}: {card.paper}. Input {'x'.join(map(str, card.input_size))}, {card.num_classes} "
                     f"classes by default; options: num_classes, in_channels (in_chans) and the builder's own.")
    return entry


for _name in list_models():
    globals()[_name] = _entry(_name)
