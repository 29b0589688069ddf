"""Settings every test run shares.

Call records (``IVR_RECORDS``, on by default) go to a directory of this run's own, never into
the checkout: every bridge a test starts, in this process or a subprocess, inherits it. A test
that reads records sets ``records_dir`` itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_RECORDS_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _RECORDS_DIR
    if "IVR_RECORDS_DIR" not in os.environ:
        _RECORDS_DIR = tempfile.mkdtemp(prefix="ivr-test-records-")
        os.environ["IVR_RECORDS_DIR"] = _RECORDS_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RECORDS_DIR is not None:
        shutil.rmtree(_RECORDS_DIR, ignore_errors=True)
