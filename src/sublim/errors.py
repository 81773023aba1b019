"""One exception type for user-facing failures: scripts print it as one line and exit 1."""


class SublimError(RuntimeError):
    """A failure whose message alone tells the user what is wrong (bad config, missing model...)."""
