"""A trained run's network as a file other tools read: safetensors (weights) or ONNX (graph and weights).

* ``safetensors``: the network's state dict alone, so that ``model.load_state_dict(safetensors.torch.load_file(f))``
  works on ``cnnlab.create_model(<the run's model>, num_classes=..., **<its options>)``; the file's metadata names
  that model, its options, classes and normalisation (``mean`` / ``std``) as JSON strings.
* ``onnx``: ``torch.onnx.export`` of the network in eval mode, input ``images`` (N, C, H, W, normalised as in
  training; N is dynamic), output ``logits``; the same metadata is stored as the model's metadata_props. Needs
  the ``onnx`` package (``pip install 'cnnlab[onnx]'``). It uses PyTorch's TorchScript-based exporter
  (``dynamo=False``), which needs nothing more: the torch.export-based one needs onnxscript as well.

Both are the weights ``load_run`` gives: a run that kept an EMA average exports the average. Test-time
augmentation (the config's ``tta``) is not part of the export: average the views yourself if you want them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from torch import nn

from cnnlab._io import atomic_path, atomic_write
from cnnlab.train.runs import RunInfo, load_run

FORMATS = ("safetensors", "onnx")
ONNX_OPSET = 18  # fixed, so that a torch upgrade does not change the file; onnxruntime >= 1.14 runs it


def export_metadata(info: RunInfo) -> dict[str, str]:
    """The string metadata written into an exported file: what to build and how to feed it."""
    return {"cnnlab_model": info.model, "model_options": json.dumps(info.model_options),
            "num_classes": str(info.num_classes), "classes": json.dumps(list(info.classes)),
            "mean": json.dumps(list(info.mean)), "std": json.dumps(list(info.std)),
            "image_shape": json.dumps(list(info.image_shape) if info.image_shape else None),
            "source": f"{info.checkpoint} (step {info.step}{', EMA average' if info.ema else ''})"}


def export_run(run_dir: str | Path, format: str = "safetensors", out: str | Path | None = None, *,
               which: str = "best", model: nn.Module | str | None = None,
               trust_code: bool = False) -> tuple[Path, RunInfo]:
    """Write the network of a run's ``best`` (or ``last``) checkpoint to ``out`` (default
    ``<run dir name>-<which>.<format>`` in the current directory; the run directory is never written); returns
    the path and the network's ``RunInfo``. ``model`` and ``trust_code``: as for ``load_run``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx":
        try:
            import onnx
        except ImportError:
            raise ValueError("ONNX export needs the onnx package: pip install 'cnnlab[onnx]' (or pip install "
                             "onnx)") from None
    out = Path(out) if out is not None else Path(f"{Path(run_dir).resolve().name}-{which}.{format}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / f'model.{format}'}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another")
    net = load_run(run_dir, which, model=model, trust_code=trust_code)
    info: RunInfo = net.run_info
    metadata = export_metadata(info)
    if format == "safetensors":
        # copies: safetensors refuses tensors that share memory, and a state dict's views may
        state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in net.state_dict().items()}
        atomic_write(out, st_save(state, metadata={"format": "pt", **metadata}))
        return out, info
    if info.image_shape is None:
        raise ValueError(f"{info.checkpoint} does not record its image size (a checkpoint from an older cnnlab); "
                         f"export it as safetensors, or resume the run for one step to re-save it")
    example = torch.zeros(1, *info.image_shape)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of one that needs onnxscript (see the module docstring);
        # "constant folding not applied" to strided slices (option-A shortcuts) is about export speed, not the graph
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*TorchScript-based ONNX")
        warnings.filterwarnings("ignore", category=UserWarning, message="Constant folding - Only steps=1")
        torch.onnx.export(net, (example,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        graph = onnx.load(str(tmp))
        for key, value in metadata.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
    return out, info
