"""Moved to :mod:`kernel.store`; kept for compatibility (``from router.store import ...`` still works).

Product code imports :mod:`kernel.store` directly.
"""

from kernel.store import (
    Store as Store,
)
from kernel.store import (
    StoreKind as StoreKind,
)
from kernel.store import (
    create_store as create_store,
)
from kernel.store import (
    mask_url as mask_url,
)
from kernel.store import (
    reset_embedded_store as reset_embedded_store,
)
