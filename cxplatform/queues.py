from enum import Enum


class CeleryQueue(Enum):
    DEFAULT = "celery"
    # Anything that may take more than a few seconds (imports, recomputes, exports).
    LONG_RUNNING = "long_running"
