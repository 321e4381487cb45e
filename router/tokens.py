"""Moved to :mod:`kernel.tokens`; kept for compatibility (``from router.tokens import ...`` still works).

Product code imports :mod:`kernel.tokens` directly.
"""

from kernel.tokens import (
    APPROXIMATION as APPROXIMATION,
)
from kernel.tokens import (
    CACHED_COUNTS as CACHED_COUNTS,
)
from kernel.tokens import (
    CACHED_TEXT_CHARS as CACHED_TEXT_CHARS,
)
from kernel.tokens import (
    CHARS_PER_TOKEN as CHARS_PER_TOKEN,
)
from kernel.tokens import (
    ENCODING_FILES as ENCODING_FILES,
)
from kernel.tokens import (
    REPLY_PRIMING as REPLY_PRIMING,
)
from kernel.tokens import (
    THREAD_COUNT_CHARS as THREAD_COUNT_CHARS,
)
from kernel.tokens import (
    TOKENS_PER_MESSAGE as TOKENS_PER_MESSAGE,
)
from kernel.tokens import (
    TOKENS_PER_NAME as TOKENS_PER_NAME,
)
from kernel.tokens import (
    Encoder as Encoder,
)
from kernel.tokens import (
    cache_dir as cache_dir,
)
from kernel.tokens import (
    content_text as content_text,
)
from kernel.tokens import (
    count_message_tokens as count_message_tokens,
)
from kernel.tokens import (
    count_message_tokens_async as count_message_tokens_async,
)
from kernel.tokens import (
    count_tokens as count_tokens,
)
from kernel.tokens import (
    encoding_name_for as encoding_name_for,
)
from kernel.tokens import (
    estimate_request_tokens as estimate_request_tokens,
)
from kernel.tokens import (
    get_encoding as get_encoding,
)
from kernel.tokens import (
    preload_encodings as preload_encodings,
)
from kernel.tokens import (
    seed_tiktoken_cache as seed_tiktoken_cache,
)
