"""bench/ranker_cuda_graph.py compares two ways of training on a GPU: without one it says so."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ranker_cuda_graph.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_a_gpu_the_comparison_is_refused_by_name(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--frame-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "torch sees no CUDA device" in result.stderr
    assert "Traceback" not in result.stderr
