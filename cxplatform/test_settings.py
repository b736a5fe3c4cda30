"""Settings for the test suite: the real settings, with ClickHouse in a private directory.

chdb lets one process open a data directory, so tests never touch ``var/clickhouse``
(a running demo holds it); each test process gets its own.
"""

import atexit
import shutil
import tempfile
import uuid

from cxplatform.settings import *  # noqa: F403
from cxplatform.settings import CLICKHOUSE_URL

if CLICKHOUSE_URL.startswith("chdb:"):
    _clickhouse_dir = tempfile.mkdtemp(prefix="cx-test-clickhouse-")
    atexit.register(shutil.rmtree, _clickhouse_dir, ignore_errors=True)
    CLICKHOUSE_URL = f"chdb://{_clickhouse_dir}"
CLICKHOUSE_DATABASE = "test_cxplatform"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A fresh cache namespace per test run: with Redis the cache outlives the run (login lockouts, …).
CACHES["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:8]}"  # noqa: F405
CACHES["analytics"]["KEY_PREFIX"] = f"analytics-test-{uuid.uuid4().hex[:8]}"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (WhiteNoise warns when it is missing)
# Tests read English unless they ask for Russian (tests/test_i18n.py does); the product defaults to ru.
LANGUAGE_CODE = "en"
