"""SSH host keys per environment: recorded in the repository, reviewed like code, checked strictly.

Every environment connects with ``ssh_strict_host_key_checking: yes`` against its own
``inventories/<env>/known_hosts`` (pyinfra's default, ``accept-new``, would trust any key a
host shows the first time, and send it the vault's secrets). An unknown or changed key makes
that host unreachable. ``hxinfra known-hosts scan`` fetches the keys a host presents
(``ssh-keyscan``) and shows their SHA-256 fingerprints, for the operator to compare with the
host's console (``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub``) before recording them.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hxinfra.errors import HxError

STRICT_KEY, FILE_KEY = "ssh_strict_host_key_checking", "ssh_known_hosts_file"
KEY_TYPES = "ed25519,ecdsa,rsa"


@dataclass(frozen=True)
class HostKey:
    kind: str  # ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    blob: str  # base64

    @property
    def fingerprint(self) -> str:
        """As ``ssh-keygen -l`` prints it: ``SHA256:`` and unpadded base64 of the key's SHA-256."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def entry_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def read_known(path: Path) -> dict[str, set[HostKey]]:
    """Host name/address -> the keys recorded for it (comments and hashed entries skipped)."""
    known: dict[str, set[HostKey]] = {}
    if not path.is_file():
        return known
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 3 or line.lstrip().startswith(("#", "|", "@")):
            continue
        for name in parts[0].split(","):
            known.setdefault(name, set()).add(HostKey(parts[1], parts[2]))
    return known


def scan(address: str, port: int = 22, timeout: int = 10) -> list[HostKey]:
    """The keys the host presents now (``ssh-keyscan``); an empty list when it does not answer."""
    if shutil.which("ssh-keyscan") is None:
        raise HxError("ssh-keyscan is missing (Debian package openssh-client)")
    r = subprocess.run(
        ["ssh-keyscan", "-T", str(timeout), "-t", KEY_TYPES, "-p", str(port), address],
        capture_output=True,
        text=True,
        timeout=timeout * 4,
        check=False,
    )
    keys = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            keys.append(HostKey(parts[1], parts[2]))
    return sorted(set(keys), key=lambda k: k.kind)


def status(recorded: set[HostKey], presented: list[HostKey]) -> str:
    """``ok`` (a presented key is recorded), ``new`` (nothing recorded), ``CHANGED`` or ``unreachable``."""
    if not presented:
        return "unreachable"
    if not recorded:
        return "new"
    return "ok" if recorded & set(presented) else "CHANGED"


def record(path: Path, names: list[str], keys: list[HostKey]) -> None:
    """Append the keys of one host (under all its names) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for key in keys:
            f.write(f"{','.join(names)} {key.kind} {key.blob}\n")
