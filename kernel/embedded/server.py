"""One embedded server: a keyspace and its Lua scripting, answering command lists.

``EVAL``, ``EVALSHA`` and ``SCRIPT LOAD|EXISTS|FLUSH`` are the server's own (scripts cannot call
them); every other command goes to the keyspace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kernel.embedded import generic, hashes, lists_sets, streams, zsets  # noqa: F401 (commands)
from kernel.embedded.keyspace import Keyspace, unknown
from kernel.embedded.replies import OK, ReplyError, wrong_args
from kernel.embedded.scripting import Scripting


class EmbeddedServer:
    """The keys and scripts of one in-process store."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.keyspace = Keyspace(clock)
        self.scripting = Scripting(self.keyspace)

    def execute(self, args: list[bytes]) -> Any:
        """Run one command; ReplyError for an error reply."""
        name = args[0].upper()
        if name == b"EVALSHA" or name == b"EVAL":
            if len(args) < 3:
                raise wrong_args(name)
            if name == b"EVAL":
                return self.scripting.eval(args[1], args[2:])
            return self.scripting.evalsha(args[1], args[2:])
        if name == b"SCRIPT":
            return self._script(args[1:])
        keyspace = self.keyspace
        try:
            return keyspace.execute(args)
        finally:
            keyspace.after_plain_command()

    def _script(self, args: list[bytes]) -> Any:
        sub = args[0].upper() if args else b""
        if sub == b"LOAD" and len(args) == 2:
            return self.scripting.load(args[1]).encode()
        if sub == b"EXISTS" and len(args) >= 2:
            known = self.scripting.scripts
            return [int(sha.decode("ascii", "replace").lower() in known) for sha in args[1:]]
        if sub == b"FLUSH" and len(args) <= 2:
            self.scripting.scripts.clear()
            return OK
        if sub in (b"LOAD", b"EXISTS", b"FLUSH"):
            raise wrong_args(b"script|" + sub.lower())
        raise unknown(b"SCRIPT " + sub) if sub else ReplyError(b"ERR wrong number of arguments")
