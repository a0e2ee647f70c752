"""``venv_install``: a Python application into its own virtualenv, pinned requirements, from the
index or from a wheelhouse uploaded by the controller."""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.exceptions import OperationValueError
from pyinfra.facts.files import FileContents
from typing_extensions import override  # typing.override is 3.12+

from hxinfra.ops.refusal import refuse


class _PythonTarget(FactBase[str]):
    """The host's python3 version and machine, e.g. ``3.11.2 x86_64``."""

    @override
    def command(self) -> str:
        return "python3 -c 'import platform; print(platform.python_version(), platform.machine())'"

    @override
    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""


PIP_ENV = re.compile(r"(HTTPS?_PROXY|NO_PROXY|PIP_[A-Z_]+)")


@operation()
def venv_install(
    venv: str,
    requirements: list[str],
    wheelhouse: bool = True,
    pip_env: dict[str, str] | None = None,
) -> Generator[Any, Any, None]:
    """
    Install pinned ``requirements`` into a venv, once: ``<venv>/.hxinfra-requirements`` records
    them, so a re-run does nothing and a new pin installs again (the caller restarts on change).

    + venv: the venv's directory (made with ``python3 -m venv`` when missing)
    + requirements: e.g. ``["litellm[proxy]==1.106.2"]``
    + wheelhouse: build the wheelhouse on the controller for the host's Python (cached) and upload
      it: hosts need no route to an index; False: the host's pip reaches the index itself
    + pip_env: environment of the host's pip when not using a wheelhouse (``HTTPS_PROXY``,
      ``PIP_INDEX_URL``, ``PIP_CERT``...)
    """
    from hxinfra.wheelhouse import Target, build

    q = shlex.quote
    wanted = " ".join(requirements)
    bad = [k for k in (pip_env or {}) if not PIP_ENV.fullmatch(k)]
    if bad:
        raise OperationValueError(f"pip_env: not a proxy or PIP_ variable: {', '.join(bad)}")
    marker = f"{venv}/.hxinfra-requirements"
    current = host.get_fact(FileContents, path=marker)
    if current and " ".join(current).strip() == wanted:
        host.noop(f"{wanted} already installed in {venv}")
        return
    pip = f"{q(venv)}/bin/pip install --disable-pip-version-check --no-input --quiet"
    setup = f"[ -x {q(venv)}/bin/pip ] || python3 -m venv {q(venv)}"
    reqs = " ".join(q(r) for r in requirements)
    record = f"printf '%s\\n' {q(wanted)} > {q(marker)}"
    if wheelhouse:
        version, _, machine = host.get_fact(_PythonTarget).partition(" ")
        if not version:
            yield from refuse("python3 does not run on the host: cannot build a wheelhouse for it")
            return
        tar = build(list(requirements), Target(version, machine or "x86_64"))
        remote = host.get_temp_filename(f"hxinfra-wheels-{uuid.uuid4()}")
        yield FileUploadCommand(str(tar), remote)
        script = (
            f"set -e; {setup}; d=$(mktemp -d); trap 'rm -rf \"$d\" {q(remote)}' EXIT; "
            f'tar -xf {q(remote)} -C "$d"; {pip} --no-index --find-links "$d" {reqs}; {record}'
        )
    else:
        env = " ".join(f"{k}={q(v)}" for k, v in sorted((pip_env or {}).items()) if v)
        script = f"set -e; {setup}; {env} {pip} {reqs}; {record}"
    yield StringCommand("sh", "-c", q(script))
