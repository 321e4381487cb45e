"""Moved to :mod:`kernel.log`; kept for compatibility (``from router.log import ...`` still works).

Product code imports :mod:`kernel.log` directly.
"""

from kernel.log import (
    configure_logging as configure_logging,
)
from kernel.log import (
    get_logger as get_logger,
)
from kernel.log import (
    install_log_file as install_log_file,
)
from kernel.log import (
    json_formatter as json_formatter,
)
from kernel.log import (
    log_file_options as log_file_options,
)
from kernel.log import (
    mask_secrets as mask_secrets,
)
