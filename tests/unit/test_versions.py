"""Version comparison for "fix not deployed there yet": natural order, and no number bomb."""

from __future__ import annotations

import pytest

from bridge.problems.versions import is_older


@pytest.mark.parametrize(
    "running, fixed_in, older",
    [
        ("2026.11.9", "2026.11.10", True),
        ("2026.11.10", "2026.11.9", False),
        ("release-7b", "release-10a", True),
        ("release-007", "release-7", False),
        ("1" * 5000, "2026.11.10", False),
        ("2026.11.10", "1" * 5000, True),
        ("v" + "9" * 4301 + "-x", "v" + "9" * 4302 + "-x", True),
    ],
)
def test_versions_compare_naturally_even_with_digit_runs_past_int_limits(running, fixed_in, older):
    assert is_older(running, fixed_in) is older
