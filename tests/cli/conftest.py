"""The fake-agent daemon fixture, shared with the other talk tests."""

from tests.fakes.fixtures import fake_daemon

__all__ = ["fake_daemon"]
