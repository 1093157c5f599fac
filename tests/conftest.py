from __future__ import annotations

import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them when pytest-xdist runs workers side by side.
torch.set_num_threads(max(1, int(os.environ.get("MEDST_TEST_THREADS", "2"))))
# No ahead-of-time compiles in the background during the tests (medst.inferers.aot): the tests that check them turn
# them on; the subprocesses of CLI tests inherit this.
os.environ.setdefault("MEDST_COMPILE", "0")


@pytest.fixture
def sample():
    """``sample("fmri_4d")`` -> Path of a real sample file; skips when its data package is absent."""
    from medst.data import sample_file

    def _get(name: str):
        try:
            return sample_file(name)
        except FileNotFoundError as e:
            pytest.skip(str(e))

    return _get


# ---------------------------------------------------------------------------------------------- skip policy
# The README's install puts every test dependency and sample-data package in place, so in CI a skipped test means a
# broken install. With CI_FAIL_ON_SKIP=1 (set by .ci/run) or --fail-on-skip, a skip whose reason matches none of
# the patterns of the ``allowed_skips`` ini option (pyproject.toml) fails the session.

_SKIPS: list[tuple[str, str]] = []


def pytest_addoption(parser):
    parser.addoption(
        "--fail-on-skip", action="store_true", default=False,
        help="fail the session on a skip whose reason is not in the allowed_skips ini option (env CI_FAIL_ON_SKIP=1)",
    )
    parser.addini("allowed_skips", type="linelist", default=[],
                  help="regular expressions (re.search) of the skip reasons that --fail-on-skip accepts")


def _fail_on_skip(config) -> bool:
    return bool(config.getoption("--fail-on-skip")) or os.environ.get("CI_FAIL_ON_SKIP", "") not in ("", "0")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def unexpected_skips(skips: list[tuple[str, str]], allowed: list[str]) -> list[tuple[str, str]]:
    """The (test id, reason) pairs whose reason matches none of the ``allowed`` patterns."""
    import re

    return [(nodeid, reason) for nodeid, reason in skips if not any(re.search(p, reason) for p in allowed)]


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPS.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not _fail_on_skip(config) or getattr(config, "workerinput", None) is not None:
        return  # xdist workers report to the controller, which decides
    bad = unexpected_skips(_SKIPS, config.getini("allowed_skips"))
    if not bad:
        return
    tr = config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(bad)} unexpected skip(s) (CI_FAIL_ON_SKIP): a dependency or sample-data package is missing?"]
    lines += [f"  {nodeid}: {reason}" for nodeid, reason in bad]
    lines.append("  expected reasons are listed in pyproject.toml's [tool.pytest.ini_options] allowed_skips")
    if tr is not None:
        tr.write_sep("=", "unexpected skips", red=True)
        for line in lines:
            tr.write_line(line)
    else:  # pragma: no cover
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
