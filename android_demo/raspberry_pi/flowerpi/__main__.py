"""``python3 -m flowerpi``: see :mod:`flowerpi.app`."""

import sys

from flowerpi.app import main

sys.exit(main())
