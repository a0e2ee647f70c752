"""The local lab fleet (``hxinfra lab``): real Debian hosts booted with systemd-nspawn."""

from hxinfra.lab.core import Lab
from hxinfra.lab.host import LAB_DOMAIN, LabHost
from hxinfra.lab.system import check_prerequisites

__all__ = ["LAB_DOMAIN", "Lab", "LabHost", "check_prerequisites"]
