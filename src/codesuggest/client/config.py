"""The user's client config file: instance URL and personal access token, mode 0600.

Lives at `platformdirs.user_config_dir("codesuggest")/client.json`; the environment variable
`CODESUGGEST_CONFIG_DIR` replaces the directory. `codesuggest login` and `codesuggest up`
write it (through `save`), every other client command reads it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

CONFIG_DIR_ENV = "CODESUGGEST_CONFIG_DIR"
FILE_NAME = "client.json"


@dataclass(frozen=True)
class StoredConfig:
    instance_url: str
    token: str


def config_path() -> Path:
    directory = os.environ.get(CONFIG_DIR_ENV) or platformdirs.user_config_dir("codesuggest")
    return Path(directory) / FILE_NAME


def save(instance_url: str, token: str, path: Path | str | None = None) -> Path:
    """Write the config atomically; the file is created 0600 so the PAT is never readable by
    others, not even for a moment."""
    target = Path(path) if path is not None else config_path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"instance_url": instance_url.rstrip("/"), "token": token}, indent=2)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".client-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load(path: Path | str | None = None) -> StoredConfig | None:
    """The stored config, or None when there is none (or it is not ours to read)."""
    target = Path(path) if path is not None else config_path()
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not data.get("instance_url") or not data.get("token"):
        return None
    return StoredConfig(instance_url=str(data["instance_url"]), token=str(data["token"]))
