"""`python -m rerankforge`: the `rerankforge` command."""

import sys

from rerankforge.cli.main import main

sys.exit(main())
