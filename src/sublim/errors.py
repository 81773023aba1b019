"""One exception type for user-facing failures: scripts print it as one line and exit 1."""


class SublimError(RuntimeError):
    """A failure whose message alone tells the user what is wrong (bad config, missing model...)."""


def one_line(exc: BaseException, max_lines: int = 3, width: int = 400) -> str:
    """An exception's message squeezed onto one line: its first ``max_lines`` non-empty
    lines (a pydantic error names the class first and the cause after), joined by " | "."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " | ".join(lines[:max_lines]) or type(exc).__name__
    return text if len(text) <= width else text[: width - 3] + "..."
