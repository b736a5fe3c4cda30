class ApplicationError(Exception):
    """A failure the user can act on; ``message`` is shown as is (HackSoft styleguide)."""

    def __init__(self, message: str, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
