# pytest configuration shared by all tests: the project's root on sys.path (so `pytest` works
# as well as `python -m pytest`), and the offline data copies in ../shared/data when present
# (tests that need data they cannot find are skipped); the marker of the slow tests.
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
if "LPO_DATA_DIR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["LPO_DATA_DIR"] = str(ROOT.parent / "shared" / "data")


def pytest_configure(config):
    # `pytest -m "not slow"`: the quick check (about a minute); plain `pytest`: everything
    config.addinivalue_line("markers", "slow: takes more than a few seconds (runs train.py or a real model); "
                            "left out by -m 'not slow'")
