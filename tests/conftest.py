import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__)))

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
INCOME_CSV = os.path.join(SHARED, "data", "income.csv")

# the CLI keeps compiled programs on disk: in tests, in a directory of this session, not ~/.cache
import tempfile  # noqa: E402

os.environ.setdefault("FITDOCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="fitdoctor-test-cache-"))
