"""`python -m stream` is the same as `csignal`."""

import sys

from stream.cli import main

sys.exit(main())
