"""Moved to :mod:`kernel.masking`; kept for compatibility (``from router.masking import ...`` still works).

Product code imports :mod:`kernel.masking` directly.
"""

from kernel.masking import (
    forget_secret as forget_secret,
)
from kernel.masking import (
    looks_like_secret as looks_like_secret,
)
from kernel.masking import (
    mask_secret as mask_secret,
)
from kernel.masking import (
    redact as redact,
)
from kernel.masking import (
    register_secret as register_secret,
)
from kernel.masking import (
    register_secrets as register_secrets,
)
