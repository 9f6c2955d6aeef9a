"""Feature and class names inside metric names: used as they are when safe, derived when not."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from onnxlambda.monitoring.metrics import PSI_PREFIX, metric_safe


def test_identifier_like_names_are_used_as_they_are() -> None:
    for name in ("bill_length_mm", "s1", "class-0", "v1.2"):
        assert metric_safe(name) == name


def test_other_names_get_safe_characters_and_a_digest_of_the_original() -> None:
    # GIVEN a real column name from scikit-learn's wine data
    safe = metric_safe("od280/od315_of_diluted_wines")
    # THEN the slash becomes "_" and 8 hex digits of the name's sha256 keep it unique
    assert re.fullmatch(r"od280_od315_of_diluted_wines_[0-9a-f]{8}", safe)
    # AND names that differ only in unsafe characters never share a metric
    assert metric_safe("a/b") != metric_safe("a b") != metric_safe("a_b")


@given(st.text(min_size=1, max_size=400))
def test_any_name_gives_a_short_safe_metric_name(name: str) -> None:
    safe = metric_safe(name)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", safe)
    # CloudWatch metric names are at most 255 characters, prefix included
    assert len(PSI_PREFIX + safe) <= 255
