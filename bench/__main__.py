"""``python -m bench [quick|cpu|gpu|sweep] [options]``; see bench/README.md."""

import sys

from .cli import main

sys.exit(main())
