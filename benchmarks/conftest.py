import os

import fastconv.bench  # noqa: F401  (before torch: sets THP_MEM_ALLOC_ENABLE, see fastconv/bench.py)
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "0")
