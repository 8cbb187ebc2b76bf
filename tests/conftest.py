"""Shared fixtures.  Helpers live in ``helpers.py`` and strategies in ``strategies.py``;
both are importable from every test module because this file puts tests/ (and the
project root, for an uninstalled checkout) on ``sys.path``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

_TESTS = Path(__file__).resolve().parent
for _p in (_TESTS, _TESTS.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import helpers  # noqa: E402

# Every Python subprocess a test starts is the project's own interpreter, named by sys.executable
# itself.  A venv interpreter started through a link outside the venv (or any other python on
# PATH) loses the venv: it imports whatever the system Python happens to have, so such a test
# passes only on a machine where the project's packages were installed by hand.  The guard
# turns that into a failure here, on every machine.
helpers.guard_subprocesses()

# Deterministic by default: every run draws the same examples (and writes no example
# database).  HYPOTHESIS_PROFILE=explore draws fresh ones, for hunting bugs locally.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

EXAMPLES = helpers.EXAMPLES


@pytest.fixture(scope="session")
def examples() -> list[Path]:
    return list(helpers.EXAMPLES)


@pytest.fixture(params=helpers.EXAMPLES, ids=lambda p: p.stem)
def example_path(request) -> Path:
    """Each of examples/*.ein in turn."""
    return request.param


@pytest.fixture(scope="session")
def sizes_for():
    return helpers.sizes_for


@pytest.fixture(scope="session")
def sparse_variant():
    return helpers.sparse_variant


@pytest.fixture(scope="session")
def dense_variant():
    return helpers.dense_variant


def pytest_collection_modifyitems(config, items):
    # the examples must exist, or every parametrization over them silently vanishes
    if not helpers.EXAMPLES:
        raise pytest.UsageError(f"no examples found in {helpers.EXAMPLES_DIR}")


@pytest.fixture(scope="session")
def c_compiler() -> str:
    """The C compiler the C tests need (./dev.sh installs gcc); fail, do not skip, without one."""
    import os
    import shutil

    cc = shutil.which(os.environ.get("CC", "cc"))
    assert cc, "no C compiler: install gcc (./dev.sh test does it as root) or set CC"
    return cc


@pytest.fixture(scope="module")
def private_c_cache(tmp_path_factory):
    """Compile into a directory private to this test session (not the user's cache); restore the
    environment afterwards.  Modules that compile use it: ``pytestmark = pytest.mark.usefixtures(...)``."""
    d = tmp_path_factory.getbasetemp() / "systec-c-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYSTEC_REF_CACHE", str(d))
        yield d
