"""`python -m ccproxy [serve]`."""

import sys

from ccproxy.cli import main

sys.exit(main())
