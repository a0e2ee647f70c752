"""Test deploy: one file per host, validated by a check that fails where /etc/hx-test/fail-here exists."""

from pyinfra import host

from hxinfra.desired import ManagedFile
from hxinfra.ops.configset import config_set

config_set(
    name="Write /etc/hx-test/marker (fails where /etc/hx-test/fail-here exists)",
    items=[ManagedFile("/etc/hx-test/marker", f"rollout {host.data.get('fake_run', '')}\n")],
    validate="test ! -e /etc/hx-test/fail-here",
)
