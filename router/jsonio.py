"""Moved to :mod:`kernel.jsonio`; kept for compatibility (``from router.jsonio import ...`` still works).

Product code imports :mod:`kernel.jsonio` directly.
"""

from kernel.jsonio import (
    MAX_DEPTH as MAX_DEPTH,
)
from kernel.jsonio import (
    TooDeepError as TooDeepError,
)
from kernel.jsonio import (
    dumps as dumps,
)
from kernel.jsonio import (
    loads as loads,
)
