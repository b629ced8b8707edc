"""pullunit: paired pull/run systemd units for Docker containers."""

__version__ = "0.1.0"
