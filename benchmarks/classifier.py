"""Shim: the measuring classifier lives in train/classifier.py (its model in train/assets/).

    python benchmarks/classifier.py train|check   # same as python -m train.classifier train|check
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `train` runs from the checkout, it is not installed
    sys.path.insert(0, str(ROOT))

from train.classifier import *  # noqa: E402,F403
from train.classifier import main  # noqa: E402

if __name__ == "__main__":
    main()
