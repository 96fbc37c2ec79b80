"""The operator service: HTTP API, authentication and roles, live alert stream, console."""

from openlfr.api.app import create_app

__all__ = ["create_app"]
