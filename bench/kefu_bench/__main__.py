"""`python -m bench.kefu_bench`."""

import sys

from .cli import main

sys.exit(main())
