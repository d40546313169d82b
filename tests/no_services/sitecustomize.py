"""Python imports this at start-up when this folder is on PYTHONPATH: the process may not reach any service."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # the repository, for tests.service_guard
from tests.service_guard import install

install()
