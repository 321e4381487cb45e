"""Moved to :mod:`kernel.settings`; kept for compatibility (``from router.settings import ...`` still works).

Product code imports :mod:`kernel.settings` directly.
"""

from kernel.settings import (
    PROVIDERS as PROVIDERS,
)
from kernel.settings import (
    STRATEGIES as STRATEGIES,
)
from kernel.settings import (
    SecretStoreType as SecretStoreType,
)
from kernel.settings import (
    Settings as Settings,
)
from kernel.settings import (
    Strategy as Strategy,
)
from kernel.settings import (
    get_settings as get_settings,
)
