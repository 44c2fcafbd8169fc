"""Reading model files without running code from them.

A registry version is written by the pipeline, but serving downloads it from a store other
processes can write to, so a model file is treated as untrusted input: weights load with
`torch.load(weights_only=True)` (tensors and plain containers only) and arrays with
`allow_pickle=False`. A file that holds anything else (a pickled object whose unpickling would
call arbitrary code) is refused with `UnsafeModelFileError` naming the file, never executed.
Every artifact on the serving path is JSON, a faiss index, or read through these two functions.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch


class UnsafeModelFileError(ValueError):
    """A model file holds Python objects beyond weights and arrays, so it is not loaded."""


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict saved with `torch.save(module.state_dict(), path)`, on the CPU."""
    path = Path(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise UnsafeModelFileError(
            f"{path} holds pickled objects besides tensors ({_refused_global(error)}); it was not loaded: "
            "model files must hold a state dict of tensors, written by torch.save(module.state_dict())"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UnsafeModelFileError(f"{path} holds a {type(state).__name__}, expected a state dict of tensors")
    return state


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, refusing object arrays (their payload is a pickle)."""
    path = Path(path)
    arrays = {}
    with np.load(path, allow_pickle=False) as stored:
        for name in stored.files:
            try:
                arrays[name] = stored[name]
            except ValueError as error:
                if "allow_pickle" not in str(error):
                    raise
                raise UnsafeModelFileError(
                    f"{path}: array {name!r} holds pickled Python objects; it was not loaded: model arrays "
                    "must be numeric or string arrays"
                ) from None
    return arrays


def _refused_global(error: pickle.UnpicklingError) -> str:
    """The line of torch's message that names what the weights-only unpickler refused."""
    lines = [line.strip() for line in str(error).splitlines()]
    refused = [line for line in lines if "Unsupported global" in line or "not an allowed global" in line]
    return refused[0].removeprefix("WeightsUnpickler error: ") if refused else "not tensors"
