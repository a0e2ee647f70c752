"""``http_ready``: wait until a service answers over HTTP(S), from the host itself (a probe a deploy
and the health checks share)."""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra.api import StringCommand, operation

# Run on the host with its own python3 (a Debian base has no curl): GET url until it answers 200.
_PROBE = """\
import ssl, subprocess, sys, time, urllib.request
url, timeout, cafile, unit = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile or None)
# a host probing itself on loopback: the chain is verified, the name (not its loopback) is not
ctx.check_hostname = not url.startswith("https://127.0.0.1:")
end, err = time.monotonic() + timeout, "no answer"
while time.monotonic() < end:
    if unit and subprocess.call(["systemctl", "is-active", "--quiet", unit]) != 0:
        err = unit + " is not running"
        break
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            if r.status == 200:
                sys.exit(0)
            err = "HTTP %d" % r.status
    except Exception as e:
        err = str(e)
    time.sleep(1)
print("%s: not ready after %ss: %s" % (url, sys.argv[2], err), file=sys.stderr)
sys.exit(1)
"""


def probe_command(url: str, timeout: int = 60, cafile: str = "", unit: str = "") -> str:
    """A shell command that waits for ``url`` to answer 200 (and gives up as soon as ``unit``
    stops running); on failure it prints the unit's last log lines (why it did not come up) and
    fails. Every value is quoted."""
    q = shlex.quote
    cmd = f"python3 -c {q(_PROBE)} {q(url)} {int(timeout)} {q(cafile)} {q(unit)}"
    if unit:
        cmd += f" || {{ journalctl -u {q(unit)} -n 30 --no-pager -o cat >&2; exit 1; }}"
    return cmd


@operation(is_idempotent=False)
def http_ready(url: str, timeout: int = 60, cafile: str = "", unit: str = "") -> Generator[Any, Any, None]:
    """
    Wait until ``url`` answers 200 from the host itself; fail with the unit's last log lines.

    + url: http(s) URL, as the host reaches it
    + timeout: seconds to wait
    + cafile: CA bundle for https ("" = the system's)
    + unit: systemd unit whose journal explains a failure
    """
    yield StringCommand("sh", "-c", shlex.quote(probe_command(url, timeout, cafile, unit)))
