"""Ansible-Vault-compatible secrets: the file format, password sources, secret values, redaction.

Operators bring ``group_vars/*/vault.yml`` files and ``!vault |`` strings encrypted with
``ansible-vault``; hxinfra reads and writes the same bytes, so nothing has to be re-encrypted.
One module per purpose: :mod:`~hxinfra.secrets.vaultfile` (the format), :mod:`~hxinfra.secrets.keyring`
(passwords), :mod:`~hxinfra.secrets.values` (``Vaulted``, ``Secret``...), :mod:`~hxinfra.secrets.redact`
(what is hidden in output). The names below are the package's API, as a library user imports them.
"""

from hxinfra.secrets.keyring import (
    PASSWORD_FILE_ENV,
    PASSWORDS_FD_ENV,
    PROJECT_PASSWORD_FILE,
    VAULT_IDS_ENV,
    Keyring,
    NoPassword,
    PasswordSource,
    default_keyring,
    keyring_from_environment,
    keyring_from_sources,
    prompt_password,
    read_password_file,
    set_default_keyring,
)
from hxinfra.secrets.redact import MASK, escape_html, redact, redaction_epoch, register_secret, registered_secrets
from hxinfra.secrets.values import (
    Composite,
    Placeholder,
    Sealed,
    Secret,
    Vaulted,
    is_secret,
    iter_vaulted,
    mark_secret,
    mask,
    reveal,
)
from hxinfra.secrets.vaultfile import (
    CIPHER,
    DEFAULT_ID,
    HEADER,
    ITERATIONS,
    Envelope,
    VaultError,
    encrypt,
    is_encrypted,
    parse_envelope,
    vault_block,
)

__all__ = [
    "CIPHER",
    "DEFAULT_ID",
    "HEADER",
    "ITERATIONS",
    "MASK",
    "PASSWORDS_FD_ENV",
    "PASSWORD_FILE_ENV",
    "PROJECT_PASSWORD_FILE",
    "VAULT_IDS_ENV",
    "Composite",
    "Envelope",
    "Keyring",
    "NoPassword",
    "PasswordSource",
    "Placeholder",
    "Sealed",
    "Secret",
    "VaultError",
    "Vaulted",
    "default_keyring",
    "encrypt",
    "escape_html",
    "is_encrypted",
    "is_secret",
    "iter_vaulted",
    "keyring_from_environment",
    "keyring_from_sources",
    "mark_secret",
    "mask",
    "parse_envelope",
    "prompt_password",
    "read_password_file",
    "redact",
    "redaction_epoch",
    "register_secret",
    "registered_secrets",
    "reveal",
    "set_default_keyring",
    "vault_block",
]
