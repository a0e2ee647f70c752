"""The local lab fleet (``hxinfra lab``): real Debian hosts booted with systemd-nspawn."""

from hxinfra.lab.core import LAB_DOMAIN, Lab, LabHost, check_prerequisites

__all__ = ["LAB_DOMAIN", "Lab", "LabHost", "check_prerequisites"]
