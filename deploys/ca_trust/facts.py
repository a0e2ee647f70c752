"""CA trust, host side: which anchors hxinfra wrote (so removals touch nothing else), and the CA
certificate read by the controller from the CA host (SFTP, the same host key trust as pyinfra's).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Any

from pyinfra import state
from pyinfra.api import FactBase
from typing_extensions import override

from deploys.ca_trust.config import HEADER
from hxinfra.pki import PkiError


class ManagedCaFiles(FactBase[list[str]]):
    """CA files in a directory that carry the hxinfra header (so removals never touch others)."""

    default = list

    @override
    def command(self, directory: str) -> str:
        q = shlex.quote(directory)
        return f"grep -l -x -F {shlex.quote(HEADER)} {q}/*.crt 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line.strip()]


_fetched: dict[tuple[str, str], str] = {}


def fetch_from_ca_host(data: Mapping[str, Any]) -> Any:
    """A fetcher for ``from_ca_host`` entries: SFTP from the CA host, by the controller, once per run."""
    import paramiko

    name = data["ca_trust_ca_host"] or next(iter(state.inventory.get_group("ca_servers", [])), None)
    if name is None:
        raise PkiError("from_ca_host: no ca_trust_ca_host and no host in group ca_servers")
    ca_host = state.inventory.get_host(str(name))
    path = data["ca_trust_ca_host_path"]

    def fetch(entry: str) -> str:
        key = (str(ca_host), path)
        if key not in _fetched:
            d = ca_host.data
            client = paramiko.SSHClient()
            # the same trust as pyinfra's connection to that host: its known_hosts file, strict
            known_hosts = d.get("ssh_known_hosts_file")
            if known_hosts:
                client.load_host_keys(os.path.expanduser(str(known_hosts)))
            else:
                client.load_system_host_keys()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(
                    d.get("ssh_hostname") or ca_host.name,
                    port=int(d.get("ssh_port") or 22),
                    username=d.get("ssh_user"),
                    key_filename=d.get("ssh_key"),
                    timeout=15,
                )
                with client.open_sftp() as sftp, sftp.open(path) as f:
                    _fetched[key] = f.read().decode()
            except (OSError, paramiko.SSHException) as e:
                raise PkiError(f"CA {entry}: cannot fetch {path} from CA host {ca_host}: {e}") from e
            finally:
                client.close()
        return _fetched[key]

    return fetch
