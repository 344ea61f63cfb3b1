"""The collector settings ``faye serve`` applies, and its refusal of nonsense."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faye.gc_tuning import SERVER_THRESHOLDS, parse_thresholds


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50000,20,100", (50_000, 20, 100)), ("700", (700,)), ("python", None), (" Python ", None)],
)
def test_thresholds_are_read(text: str, expected: tuple[int, ...] | None) -> None:
    assert parse_thresholds(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1,2,3,4", "-1", "1,,2"])
def test_nonsense_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="up to three counts"):
        parse_thresholds(text)


def test_serve_refuses_bad_thresholds_before_starting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faye", "serve", "--gc-thresholds", "lots"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--gc-thresholds" in done.stderr and "lots" in done.stderr


def test_tuning_freezes_start_up_and_sets_thresholds() -> None:
    # In a child: the collector is process-wide and pytest's own must stay as it is.
    code = (
        "import gc; from faye.gc_tuning import tune_for_server; tune_for_server(); "
        "print(gc.get_threshold(), gc.get_freeze_count() > 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert out.strip() == f"{SERVER_THRESHOLDS} True"
