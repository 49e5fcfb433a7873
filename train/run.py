"""Training entry point: `accelerate launch train/run.py --config configs/NAME.yaml [--key value ...]`.

Kept thin on purpose: the launched script's folder comes first on sys.path, so nothing here may
shadow a library; the code lives in `rerankforge.training`."""

import sys

from rerankforge.training.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
