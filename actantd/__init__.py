"""Actant daemon: supervises AI coding agents and builds their workspaces from JSON configs."""

__version__ = "0.1.0"
