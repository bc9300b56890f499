"""``python -m mr3_reward.labeling INPUT OUTPUT ...``: the same as ``mr3 label``."""

import sys

from mr3_reward.labeling.cli import main

sys.exit(main())
