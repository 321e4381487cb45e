"""Moved to :mod:`kernel.redis_keys`; kept for compatibility (``from router.redis_keys import ...`` still works).

Product code imports :mod:`kernel.redis_keys` directly.
"""

from kernel.redis_keys import (
    RedisKeys as RedisKeys,
)
from kernel.redis_keys import (
    describe as describe,
)
from kernel.redis_keys import (
    shard_of as shard_of,
)
from kernel.redis_keys import (
    shard_tag as shard_tag,
)
