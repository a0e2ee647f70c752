"""``hxinfra vault``: the ``ansible-vault`` verbs, on the same file format.

Every verb reads or writes whole files only after all decryption succeeded, and writes
atomically (a private temp file in the same directory, then ``rename``), so a wrong password or
a damaged file leaves everything as it was.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hxinfra.paths import find_project_root
from hxinfra.secrets import (
    DEFAULT_ID,
    Keyring,
    PasswordSource,
    VaultError,
    encrypt,
    is_encrypted,
    keyring_from_sources,
    set_default_keyring,
    vault_block,
)


def vault_options(confirm: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--vault-id``/``--vault-password-file``/``--ask-vault-pass``; pass ``keyring=``.

    ``confirm`` asks twice at a prompt (for verbs that encrypt with a new password).
    """

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(
            *args: Any, vault_ids: tuple[str, ...], password_files: tuple[str, ...], ask: bool, **kw: Any
        ) -> Any:
            keyring = keyring_from_sources(vault_ids, password_files, ask, find_project_root(), confirm=confirm)
            set_default_keyring(keyring)
            return f(*args, keyring=keyring, **kw)

        wrapper = click.option(
            "--ask-vault-pass", "-J", "ask", is_flag=True, help="Ask for the vault password on the terminal."
        )(wrapper)
        wrapper = click.option(
            "--vault-password-file",
            "password_files",
            multiple=True,
            metavar="PATH",
            help="Vault password file, or an executable printing it. Default: $HXINFRA_VAULT_PASSWORD_FILE, "
            "then .vault_pass in the project root, then a prompt.",
        )(wrapper)
        wrapper = click.option(
            "--vault-id",
            "vault_ids",
            multiple=True,
            metavar="LABEL@SOURCE",
            envvar="HXINFRA_VAULT_ID",
            show_envvar=True,
            help="A vault id and its password source (file, script or 'prompt'); repeatable.",
        )(wrapper)
        return wrapper

    return decorate


ENCRYPT_ID = click.option(
    "--encrypt-vault-id", metavar="LABEL", help="Which vault id encrypts (needed when several are given)."
)


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise VaultError(f"{path}: cannot read: {e.strerror}") from e


def write_atomic(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` in one rename; a new file is 0600, an existing one keeps its mode."""
    write_all([(path, data, mode)])


def write_all(outputs: list[tuple[str, bytes, int | None]]) -> None:
    """Write every ``(path, data, mode)``, all or nothing: each is staged beside its target first,
    and only when every stage is written are they renamed into place ('-' is stdout).

    A new file is 0600; an existing one keeps its mode unless ``mode`` is given.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data, mode in outputs:
            if path == "-":
                continue
            target = Path(path)
            if target.is_dir():
                raise VaultError(f"{path}: is a directory")
            if mode is None:
                mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o600
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".hxinfra-tmp", dir=target.parent)
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as e:
        for tmp, _target in staged:
            Path(tmp).unlink(missing_ok=True)
        where = e.filename or (outputs[len(staged) - 1][0] if staged else outputs[0][0])
        raise VaultError(f"{where}: cannot write: {e.strerror}; no file was changed") from None
    except BaseException:
        for tmp, _target in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    for path, data, _mode in outputs:
        if path == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()


def _run_editor(initial: bytes, suffix: str) -> bytes:
    """Edit a plaintext copy in a private (0700) directory; the copy is gone afterwards, always."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    tmpdir = tempfile.mkdtemp(prefix="hxinfra-vault-")  # mode 0700
    try:
        plain = Path(tmpdir) / f"plaintext{suffix}"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(initial)
        try:
            rc = subprocess.call([*shlex.split(editor), str(plain)])
        except OSError as e:
            raise VaultError(f"cannot run editor {editor!r}: {e.strerror}") from e
        if rc != 0:
            raise VaultError(f"editor {editor!r} exited with {rc}; nothing was written")
        return plain.read_bytes()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _suffix(path: str) -> str:
    return Path(path).suffix if Path(path).suffix in (".yml", ".yaml", ".json", ".txt") else ""


@click.group()
def vault() -> None:
    """Encrypt and decrypt Ansible-Vault files and strings (the same format as ``ansible-vault``).

    \b
    Password sources: --vault-password-file PATH (an executable is run), $HXINFRA_VAULT_PASSWORD_FILE,
    .vault_pass in the project root, then a prompt. --vault-id label@source adds more.
    """


@vault.command()
@click.argument("file")
@ENCRYPT_ID
@vault_options(confirm=True)
def create(file: str, encrypt_vault_id: str | None, keyring: Keyring) -> None:
    """Create FILE encrypted, writing it in $EDITOR."""
    if Path(file).exists():
        raise VaultError(f"{file} already exists; use 'hxinfra vault edit'")
    label, password = keyring.secret_for(encrypt_vault_id)
    try:  # before the editor opens: what is typed there must always have a place to go
        Path(file).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaultError(f"{file}: cannot create its directory: {e.strerror}") from None
    plaintext = _run_editor(b"", _suffix(file))
    if not plaintext.strip():
        raise VaultError(f"{file}: nothing was written in the editor; not created")
    write_atomic(file, encrypt(plaintext, password, label).encode(), 0o600)
    click.echo(f"Created {file} (vault id {label})", err=True)


@vault.command()
@click.argument("file")
@vault_options()
def edit(file: str, keyring: Keyring) -> None:
    """Decrypt FILE into $EDITOR and re-encrypt it (same vault id) when it changed."""
    plaintext, label, password = keyring.open(_read(file), file)
    edited = _run_editor(plaintext, _suffix(file))
    if edited == plaintext:
        click.echo(f"{file} unchanged", err=True)
        return
    write_atomic(file, encrypt(edited, password, label).encode())
    click.echo(f"Saved {file}", err=True)


@vault.command()
@click.argument("files", nargs=-1, required=True)
@vault_options()
def view(files: tuple[str, ...], keyring: Keyring) -> None:
    """Print the plaintext of FILEs."""
    plain = [keyring.decrypt(_read(f), f) for f in files]
    for data in plain:
        sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _outputs(files: tuple[str, ...], output: str | None) -> list[str]:
    if output and len(files) != 1:
        raise click.UsageError("--output works with one input file")
    return [output] if output else list(files)


@vault.command("encrypt")
@click.argument("files", nargs=-1, required=True)
@click.option("--output", metavar="PATH", help="Write here instead of in place ('-' for stdout).")
@ENCRYPT_ID
@vault_options(confirm=True)
def encrypt_cmd(files: tuple[str, ...], output: str | None, encrypt_vault_id: str | None, keyring: Keyring) -> None:
    """Encrypt FILEs in place ('-' reads stdin and writes stdout)."""
    outs = _outputs(files, output)
    data = [_read(f) for f in files]
    for f, d in zip(files, data, strict=True):
        if is_encrypted(d):
            raise VaultError(f"{f} is already encrypted")
    label, password = keyring.secret_for(encrypt_vault_id)
    encrypted = [encrypt(d, password, label).encode() for d in data]
    write_all([(out, d, None) for out, d in zip(outs, encrypted, strict=True)])
    click.echo(f"Encrypted {len(files)} file(s) with vault id {label}", err=True)


@vault.command("decrypt")
@click.argument("files", nargs=-1, required=True)
@click.option("--output", metavar="PATH", help="Write here instead of in place ('-' for stdout).")
@vault_options()
def decrypt_cmd(files: tuple[str, ...], output: str | None, keyring: Keyring) -> None:
    """Decrypt FILEs in place."""
    outs = _outputs(files, output)
    plain = [keyring.decrypt(_read(f), f) for f in files]  # all or nothing
    # plaintext is private: 0600 whatever the vault file's mode was (as ansible-vault does)
    write_all([(out, d, 0o600) for out, d in zip(outs, plain, strict=True)])
    click.echo(f"Decrypted {len(files)} file(s)", err=True)


@vault.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--new-vault-password-file", metavar="PATH", help="The new password's file or script.")
@click.option("--new-vault-id", metavar="LABEL@SOURCE", help="The new vault id and password source.")
@vault_options()
def rekey(
    files: tuple[str, ...], new_vault_password_file: str | None, new_vault_id: str | None, keyring: Keyring
) -> None:
    """Re-encrypt FILEs with a new password (and optionally a new vault id)."""
    if new_vault_password_file and new_vault_id:
        raise click.UsageError("give --new-vault-password-file or --new-vault-id, not both")
    plain = [keyring.open(_read(f), f) for f in files]  # all opened before the new password is asked
    if new_vault_id:
        source = PasswordSource.parse(new_vault_id)
    else:
        source = PasswordSource(DEFAULT_ID, new_vault_password_file or "prompt")
    label_override = source.vault_id if new_vault_id else None
    password = source.load(confirm=True)
    write_all(
        [
            (f, encrypt(data, password, label_override or label).encode(), None)
            for f, (data, label, _old) in zip(files, plain, strict=True)
        ]
    )
    click.echo(f"Rekeyed {len(files)} file(s)", err=True)


@vault.command("encrypt-string")
@click.argument("plaintext", required=False)
@click.option("--name", "-n", metavar="NAME", help="Print as a YAML 'NAME: !vault |' entry.")
@ENCRYPT_ID
@vault_options(confirm=True)
def encrypt_string(plaintext: str | None, name: str | None, encrypt_vault_id: str | None, keyring: Keyring) -> None:
    """Encrypt a string for a YAML file (PLAINTEXT, or stdin when absent or '-')."""
    if plaintext is None or plaintext == "-":
        if sys.stdin.isatty():
            click.echo("Reading plaintext from stdin (end with Ctrl-D)", err=True)
        data = sys.stdin.buffer.read()  # bytes as they are: any encoding encrypts
    else:
        data = os.fsencode(plaintext)
    if not data:
        raise VaultError("empty string: nothing to encrypt")
    label, password = keyring.secret_for(encrypt_vault_id)
    text = encrypt(data, password, label)
    click.echo((f"{name}: " if name else "") + vault_block(text), nl=False)
    click.echo("Encryption successful", err=True)
