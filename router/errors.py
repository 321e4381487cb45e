"""Moved to :mod:`kernel.errors`; kept for compatibility (``from router.errors import ...`` still works).

Product code imports :mod:`kernel.errors` directly.
"""

from kernel.errors import (
    AdmissionRefusedError as AdmissionRefusedError,
)
from kernel.errors import (
    AllKeysExhaustedError as AllKeysExhaustedError,
)
from kernel.errors import (
    BadRequestError as BadRequestError,
)
from kernel.errors import (
    BudgetExceededError as BudgetExceededError,
)
from kernel.errors import (
    CapacityError as CapacityError,
)
from kernel.errors import (
    ClientRequestError as ClientRequestError,
)
from kernel.errors import (
    ConfigError as ConfigError,
)
from kernel.errors import (
    ContentFilteredError as ContentFilteredError,
)
from kernel.errors import (
    ContextLengthExceededError as ContextLengthExceededError,
)
from kernel.errors import (
    ConversationError as ConversationError,
)
from kernel.errors import (
    ConversationNotSavedError as ConversationNotSavedError,
)
from kernel.errors import (
    ConversationTooLargeError as ConversationTooLargeError,
)
from kernel.errors import (
    GatewayError as GatewayError,
)
from kernel.errors import (
    KeyNotFoundError as KeyNotFoundError,
)
from kernel.errors import (
    KeyUnavailability as KeyUnavailability,
)
from kernel.errors import (
    MalformedResponseError as MalformedResponseError,
)
from kernel.errors import (
    ModelNotAvailableError as ModelNotAvailableError,
)
from kernel.errors import (
    OverloadedError as OverloadedError,
)
from kernel.errors import (
    ProviderAuthError as ProviderAuthError,
)
from kernel.errors import (
    ProviderConnectionError as ProviderConnectionError,
)
from kernel.errors import (
    ProviderError as ProviderError,
)
from kernel.errors import (
    ProviderTimeoutError as ProviderTimeoutError,
)
from kernel.errors import (
    RateLimitedError as RateLimitedError,
)
from kernel.errors import (
    RequestTooLargeError as RequestTooLargeError,
)
from kernel.errors import (
    RouterError as RouterError,
)
from kernel.errors import (
    SecretStoreError as SecretStoreError,
)
from kernel.errors import (
    ServerError as ServerError,
)
from kernel.errors import (
    StoreError as StoreError,
)
from kernel.errors import (
    error_class as error_class,
)
from kernel.errors import (
    provider_error_class as provider_error_class,
)
