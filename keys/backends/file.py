"""The ``file`` backend: a JSON file of secrets for local development (``SECRETS_FILE``).

The file maps key ids to secrets; an object groups secrets into a folder that discovery can list::

    {"flash_01": "AIza...", "openai-keys": {"KEY_1": "sk-...", "KEY_2": "sk-..."}}

Names are paths into the file (``openai-keys/KEY_1``). The file is re-read when it changes, so a
refresh picks up edits. It should be readable by its owner only (``chmod 600``); a warning says so
otherwise. Keep it out of version control (it is in .gitignore).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

from kernel.errors import SecretStoreError
from kernel.log import get_logger
from keys.backends.base import SecretBackend

log = get_logger("keys.backends.file")


class FileBackend(SecretBackend):
    name = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._data: dict[str, Any] = {}
        self._warned_mode = False

    def default_name(self, key_id: str) -> str:
        return key_id

    async def fetch(self, name: str, key_id: str | None) -> str:
        node = self._walk(await self._load(key_id), name.strip("/"), key_id)
        if not isinstance(node, str):
            raise self.error(
                key_id, "malformed", f"{name!r} in {self.path} is a folder, not a secret"
            )
        return node

    async def list_secrets(self, path: str | None) -> dict[str, str]:
        data = await self._load(None)
        node = self._walk(data, path.strip("/"), None) if path and path.strip("/") else data
        if not isinstance(node, dict):
            raise self.error(
                None, "malformed", f"{path!r} in {self.path} is a secret, not a folder"
            )
        return {name: value for name, value in node.items() if isinstance(value, str)}

    async def ping(self) -> None:
        await self._load(None)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    # -- internals ---------------------------------------------------------------------------------
    def _walk(self, data: dict[str, Any], name: str, key_id: str | None) -> Any:
        if name in data:  # a key id may itself contain "/"-free dots and colons: exact match first
            return data[name]
        node: Any = data
        for part in name.split("/"):
            if not isinstance(node, dict) or part not in node:
                raise self.error(key_id, "not_found", f"no secret {name!r} in {self.path}")
            node = node[part]
        return node

    async def _load(self, key_id: str | None) -> dict[str, Any]:
        return await asyncio.to_thread(self._load_sync, key_id)

    def _load_sync(self, key_id: str | None) -> dict[str, Any]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise self.error(key_id, "config", f"SECRETS_FILE {self.path} does not exist") from None
        except OSError as exc:
            raise self.error(key_id, "config", f"cannot read {self.path}: {exc.strerror}") from None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return self._data
        self._warn_if_shared(info.st_mode)
        self._data = self._parse(key_id)
        self._stamp = stamp
        return self._data

    def _parse(self, key_id: str | None) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise self.error(key_id, "config", f"cannot read {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # The position only: the message of a JSON error can quote the (secret) text.
            raise SecretStoreError(
                self.name,
                key_id,
                "malformed",
                f"{self.path} is not valid JSON (line {exc.lineno}, column {exc.colno})",
            ) from None
        if not isinstance(data, dict):
            raise self.error(key_id, "malformed", f"{self.path} must hold a JSON object")
        return data

    def _warn_if_shared(self, mode: int) -> None:
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO) and not self._warned_mode:
            self._warned_mode = True
            log.warning(
                "secrets_file_permissions",
                path=str(self.path),
                mode=oct(stat.S_IMODE(mode)),
                advice="readable by other users; run chmod 600 on it",
            )
