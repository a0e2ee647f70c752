"""The ``lab`` environment: an HX topology mapped onto the running lab hosts."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hxinfra.components import Component
from hxinfra.datafiles import load_yaml_mapping
from hxinfra.errors import InventoryError, LabError
from hxinfra.inventory import Environment
from hxinfra.lab.core import Lab
from hxinfra.pki import LocalCA
from hxinfra.vault import default_keyring, encrypt, read_password_file, vault_block


class LabEnvironment(Environment):
    """An :class:`Environment` whose hosts are this machine's running lab hosts.

    ``topology`` maps lab host names to HX groups; ``hxinfra lab up`` boots those names.
    Running hosts outside the topology (booted by name for a test) join with no group.
    """

    topology: dict[str, list[str]]
    lab: Lab


def existing_lab(name: str | None = None) -> Lab:
    """A lab that ``hxinfra lab up`` made; reading the inventory of one that does not exist is an
    error (a typo in ``HXINFRA_LAB`` must not create a lab with its own CA and vault)."""
    lab = Lab(name or lab_name())
    if not (lab.dir / "pki").is_dir() and not lab.hosts():
        raise InventoryError(f"lab {lab.name!r} does not exist (create it with: hxinfra lab up; check HXINFRA_LAB)")
    return lab


def lab_ca(lab: Lab | None = None, create: bool = False) -> LocalCA:
    """The lab's own CA (made by ``lab up``, removed with the lab): TLS without an external CA."""
    lab = lab or Lab(lab_name())
    ca = LocalCA(lab.dir / "pki")
    if not ca.exists:
        if not create:
            raise LabError(f"lab {lab.name!r} has no CA: it does not exist yet (hxinfra lab up)")
        ca.init(f"HX Lab Root CA ({lab.name})")
    return ca


def prepare(lab: Lab) -> None:
    """What a lab needs besides its hosts: its CA and its vault (``lab up`` calls this)."""
    lab_ca(lab, create=True)
    lab_vault(lab, create=True)


LAB_SECRETS = ("vault_lab_pg_app_password", "vault_lab_dc_admin_password", "vault_lab_ad_user_password")
LAB_REALM = "LAB.HXINFRA.TEST"


def lab_vault(lab: Lab | None = None, create: bool = False) -> dict[str, Any]:
    """The lab's own secrets, as an Ansible vault of ``!vault`` values (vault id ``lab``).

    Generated once per lab (random values, a random 0600 password file beside them) and removed
    with the lab. The password joins this process's keyring, so lab deploys never prompt and the
    values go through exactly the path production secrets take.
    """
    lab = lab or Lab(lab_name())
    pw_file, vault_file = lab.dir / "vault-pass", lab.dir / "vault.yml"
    if not create and not vault_file.exists():
        raise LabError(f"lab {lab.name!r} has no vault: it does not exist yet (hxinfra lab up)")
    lab.dir.mkdir(parents=True, exist_ok=True)
    if not pw_file.exists():
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    password = read_password_file(pw_file, "lab")
    default_keyring().add("lab", password)
    if not vault_file.exists():
        body = "".join(
            # "Hx9-x" keeps every value within AD's complexity rules (upper, lower, digit, symbol)
            f"{name}: " + vault_block(encrypt(f"Hx9-x{secrets.token_urlsafe(18)}".encode(), password, "lab"), indent=2)
            for name in LAB_SECRETS
        )
        fd = os.open(vault_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# the lab's generated secrets (hxinfra vault view --vault-id lab@vault-pass vault.yml)\n" + body)
    return load_yaml_mapping(vault_file)


def lab_name() -> str:
    return os.environ.get("HXINFRA_LAB", "default")


def lab_environment(
    file: str | Path,
    topology: Mapping[str, list[str]],
    data: Mapping[str, Any] | None = None,
    components: Iterable[Component] = (),
    host_data: Callable[[str, str, list[str]], Mapping[str, Any]] | None = None,
) -> LabEnvironment:
    """``host_data(name, ip, groups)`` adds per-host data (e.g. certificates from the lab CA)."""
    lab = existing_lab()
    running = {h.name: h for h in lab.hosts() if h.state == "running"}
    hosts: dict[str, dict[str, Any]] = {}
    for name, host in running.items():
        groups = list(topology.get(name, []))
        hosts[name] = {"address": host.ip, "groups": groups}
        if host_data is not None:
            hosts[name]["data"] = dict(host_data(name, host.ip, groups))
    env_data = {**lab.ssh_data(), **(data or {})}
    env = LabEnvironment(file, hosts=hosts, data=env_data, components=components, name="lab")
    env.topology = {k: list(v) for k, v in topology.items()}
    env.lab = lab
    env.validate()
    return env


def prepare_dc(lab: Lab, name: str, log: Callable[[str], None] = print) -> None:
    """Make lab host ``name`` the lab's Samba AD DC: the lab realm, the vault's admin password,
    LDAP TLS with a certificate from the lab CA, and a test user ``alice``."""
    from hxinfra.lab.core import LAB_DOMAIN
    from hxinfra.lab.samba import provision_dc

    prepare(lab)
    ca = lab_ca(lab)
    host = lab.get(name)
    crt, key = ca.ensure_issued(f"{name}-dc", [f"{name}.{LAB_DOMAIN}", name], [host.ip])
    vault = lab_vault(lab)
    provision_dc(
        lab, name, LAB_REALM, str(vault["vault_lab_dc_admin_password"].reveal()),
        tls=(crt.read_text(), key.read_text(), ca.cert_path.read_text()),
        users={"alice": str(vault["vault_lab_ad_user_password"].reveal())}, log=log,
    )  # fmt: skip
