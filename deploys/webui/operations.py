"""Releases on a web UI host: unpack a verified artifact once, and prune old releases."""

from __future__ import annotations

import shlex
import uuid

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation


@operation()
def release(directory: str, version: str, artifact: str, sha256: str, present: bool):  # type: ignore[no-untyped-def]
    """
    Unpack release ``version`` into ``<directory>/releases/<version>``, once.

    + directory: the web UI's directory
    + version: the release (checked: a plain version string)
    + artifact: local path of the artifact on the controller (already verified)
    + sha256: its checksum, verified again on the host after the upload
    + present: the release is already there (from the host's state fact): nothing to do
    """
    if present:
        host.noop(f"release {version} already unpacked")
        return
    q = shlex.quote
    remote = host.get_temp_filename(f"hxinfra-release-{uuid.uuid4()}")
    final = f"{directory}/releases/{version}"
    yield FileUploadCommand(artifact, remote)
    script = (
        f"set -e; trap 'rm -rf {q(remote)} {q(final)}.partial' EXIT; "
        f"printf '%s  %s\\n' {q(sha256)} {q(remote)} | sha256sum -c --quiet; "
        f"install -d -m 0755 {q(directory)}/releases; rm -rf {q(final)}.partial; install -d -m 0755 {q(final)}.partial; "  # noqa: E501
        f"tar -xzf {q(remote)} -C {q(final)}.partial --no-same-owner --no-same-permissions; "
        f"chmod -R go-w,a+rX {q(final)}.partial; mv {q(final)}.partial {q(final)}"
    )
    yield StringCommand("sh", "-c", q(script))


@operation()
def prune(directory: str, versions: list[str]):  # type: ignore[no-untyped-def]
    """
    Remove old releases (the caller never lists one a colour points to).

    + directory: the web UI's directory
    + versions: releases to remove
    """
    if not versions:
        host.noop("no release to prune")
        return
    paths = " ".join(shlex.quote(f"{directory}/releases/{v}") for v in versions)
    yield StringCommand("sh", "-c", shlex.quote(f"rm -rf -- {paths}"))
