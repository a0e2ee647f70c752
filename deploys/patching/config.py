"""Patching, desired state: which pending upgrades to install (security only by default, from the
Debian security archive's own index), whether a reboot is allowed when an update asks for one,
and the checks the host must pass afterwards (its components' health checks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hxinfra.validate import DataError, collect

DEFAULTS: dict[str, Any] = {
    # Only security updates (the "-security" suite); false: every pending upgrade.
    "patching_security_only": True,
    # Reboot when an update asks for it (/run/reboot-required); false: report it, never reboot.
    "patching_reboot": False,
    # Seconds a reboot may take before the host counts as lost.
    "patching_reboot_timeout": 600,
    # After patching (and a reboot): the health checks of the host's components must pass within
    # this many seconds (0: do not verify).
    "patching_verify_seconds": 120,
}

# what apt would upgrade: "<package> <installed> <candidate> <suite>" lines (apt's own simulation)
PENDING = (
    'apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null | awk \'/^Inst / {o=$3; n=$4; gsub(/[][]/, "", o); '
    'gsub(/[(]/, "", n); print $2, o, n, $5}\''
)
REBOOT_FLAG = "/run/reboot-required"


def wanted(pending: list[tuple[str, str, str, str]], security_only: bool) -> list[str]:
    """The packages to upgrade: those whose candidate comes from the security suite (or all)."""
    return sorted({p for p, _, _, suite in pending if not security_only or "-security" in suite})


def verify_script(checks: list[Any], seconds: int) -> str:
    """Every check must pass, tried again for ``seconds`` (services come back after a reboot);
    the failing ones are named."""
    from shlex import quote as q

    body = "; ".join(
        f'( {c.command} ) >/dev/null 2>&1 </dev/null || fail="$fail; {c.name.replace(chr(34), "")}"' for c in checks
    )
    return (
        (
            f"end=$(( $(date +%s) + {int(seconds)} )); while :; do fail=''; {body}; [ -z \"$fail\" ] && "
            f"{{ echo 'every health check passes'; exit 0; }}; [ $(date +%s) -ge $end ] && break; sleep 3; done; "
            f'echo "hxinfra: after patching, failing:${{fail#;}}" >&2; exit 1'
        )
        if checks
        else q("true")
    )


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    def whole(key: str, low: int) -> Any:
        def check(d: Mapping[str, Any]) -> None:
            v = d[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise DataError(f"{key}: a whole number >= {low}")

        return check

    return collect(
        data,
        {
            "patching_reboot_timeout": whole("patching_reboot_timeout", 30),
            "patching_verify_seconds": whole("patching_verify_seconds", 0),
        },
    )
