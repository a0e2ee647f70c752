"""A host that stops answering in the middle of a run is found out in seconds, not in a quarter hour;
and no command waits on Nagle's algorithm (see :func:`watch`).

pyinfra's SSH connections (paramiko) send nothing while a command runs, and the kernel retries
unacknowledged data for about 15 minutes before it gives up: a host whose network is cut during a
run stalls every host of the run that long (pyinfra runs an operation on every host before the
next). So each connection hxinfra opens sends an SSH keepalive every few seconds and its socket
gives up (``TCP_USER_TIMEOUT``) when nothing it sent has been acknowledged for ``dead_after``
seconds. The transport then closes, the host's operation fails, pyinfra goes on with the others,
and :meth:`Links.lost` names the host so the report says *unreachable: connection lost*.

A slow command is not a lost link: the kernel acknowledges the keepalives whatever the host's
programs are doing. ``HXINFRA_SSH_DEAD_AFTER`` (seconds, default 20) sets the limit.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

DEAD_AFTER_ENV = "HXINFRA_SSH_DEAD_AFTER"
DEFAULT_DEAD_AFTER = 20


def dead_after() -> int:
    """Seconds without an acknowledgement after which a connection counts as lost."""
    raw = os.environ.get(DEAD_AFTER_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_DEAD_AFTER
    except ValueError:
        value = DEFAULT_DEAD_AFTER
    return max(value, 5)


def watch(transport: Any, seconds: int) -> None:
    """Keepalives every ``seconds / 4``, a socket that fails after ``seconds`` unacknowledged, and
    no Nagle delay.

    paramiko leaves Nagle's algorithm on: the second of two small SSH messages written back to back
    (a channel's requests) waits for the host's acknowledgement, which the host's kernel delays by
    40 ms. Every command paid it: 47 ms per command on the lab against 3.9 ms with
    ``TCP_NODELAY`` (as OpenSSH's client sets it), a site no-op's 14 commands per host.
    """
    transport.set_keepalive(max(seconds // 4, 1))
    sock = getattr(transport, "sock", None)
    if sock is None or not hasattr(sock, "setsockopt"):
        return
    options = [(socket.TCP_NODELAY, 1)]
    if (timeout := getattr(socket, "TCP_USER_TIMEOUT", None)) is not None:
        options.append((timeout, seconds * 1000))
    for option, value in options:
        with contextlib.suppress(OSError):  # a proxy command's pipe is no TCP socket
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


@dataclass
class Links:
    """The SSH transport of every host connected during one run."""

    seconds: int
    transports: dict[str, Any] = field(default_factory=dict)

    def lost(self) -> set[str]:
        """Hosts whose connection died during the run (the others are still open at its end)."""
        return {name for name, t in self.transports.items() if not t.is_active()}


@contextlib.contextmanager
def watching_links() -> Iterator[Links]:
    """Within: every pyinfra SSH connection is watched (see the module's docstring)."""
    from pyinfra.connectors.ssh import SSHConnector

    links = Links(dead_after())
    original = SSHConnector._connect

    def _connect(self: SSHConnector) -> None:
        original(self)
        transport = self.client.get_transport() if self.client is not None else None
        if transport is not None:
            watch(transport, links.seconds)
            # the host's own connection; a second login (the lock-out guard's fresh one) is closed on purpose
            if getattr(self.host, "connector", None) is self:
                links.transports[self.host.name] = transport

    # paramiko reports a transport that died of a lost link as EOFError on the next command, which
    # pyinfra does not expect there (its run stops for every host): make it the SSH error it handles
    # by failing that one host
    guarded = ("run_shell_command", "put_file", "get_file")
    originals = {name: getattr(SSHConnector, name) for name in guarded}
    SSHConnector._connect = _connect  # type: ignore[method-assign]
    for name, method in originals.items():
        setattr(SSHConnector, name, _eof_is_ssh_error(method))
    try:
        yield links
    finally:
        SSHConnector._connect = original  # type: ignore[method-assign]
        for name, method in originals.items():
            setattr(SSHConnector, name, method)


def _eof_is_ssh_error(method: Callable[..., Any]) -> Callable[..., Any]:
    from paramiko import SSHException

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except EOFError as e:
            raise SSHException("the connection was lost (EOF from the host)") from e

    return call
