"""Where training runs: a config's `device` setting turned into a torch device."""

from __future__ import annotations

import torch

AUTO_DEVICE = "auto"  # the GPU when torch sees one, else the CPU


def training_device(name: str, owner: str) -> torch.device:
    """The torch device a config's `device` names: "auto" is CUDA when torch sees a GPU, else the
    CPU. Refused by name when it is not a device torch knows, or a GPU this machine lacks."""
    if name == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"{owner}.device must be 'auto' or name a torch device such as 'cpu' or 'cuda', "
                         f"got {name!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{owner}.device is {name!r}, but torch sees no CUDA device here")
    return device
