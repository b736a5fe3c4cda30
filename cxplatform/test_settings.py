"""Settings for the test suite: the real settings, with ClickHouse in a private directory.

chdb lets one process open a data directory, so tests never touch ``var/clickhouse``
(a running demo holds it); each test process gets its own.
"""

import tempfile

from cxplatform.settings import *  # noqa: F403
from cxplatform.settings import CLICKHOUSE_URL

if CLICKHOUSE_URL.startswith("chdb:"):
    CLICKHOUSE_URL = f"chdb://{tempfile.mkdtemp(prefix='cx-test-clickhouse-')}"
CLICKHOUSE_DATABASE = "test_cxplatform"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
