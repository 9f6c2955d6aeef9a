"""The API function's observer with a shadow challenger: what reaches the capture and the metrics."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.api import observe
from onnxlambda.codecs import predict as predict_codec
from onnxlambda.monitoring.capture import Capturer, CaptureSettings
from onnxlambda.release.shadow import ShadowSettings
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from tests.conftest import MODELS, golden_rows
from tests.unit.release.candidates import swap_classes, write_candidate


@pytest.fixture
def service() -> Service:
    return Service.from_settings(dataclasses.replace(Settings.from_env(), model_dir=MODELS / "penguins"))


@pytest.fixture
def lines() -> Iterator[list[str]]:
    written: list[str] = []
    yield written
    observe.metrics.clear_metrics()


def observer_with(
    service: Service, lines: list[str], capture_rate: float, shadow_rate: float, challenger_dir: Path
) -> observe.Observer:
    obs = observe.Observer(
        enabled=True,
        capture=CaptureSettings(sample_rate=capture_rate),
        shadow=ShadowSettings(sample_rate=shadow_rate, challenger_dir=challenger_dir),
    )
    obs._capturer = Capturer(service.manifest, obs.capture_settings, write=lines.append)
    obs._rng = np.random.default_rng(3)
    assert obs.prepare(service)["shadow"] == "on"
    return obs


def records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for chunk in lines for x in chunk.splitlines()]


def shadow_metrics() -> dict[str, float]:
    """The Shadow* counts Powertools holds for the next EMF line (summed, as CloudWatch's Sum would)."""
    return {
        name: float(sum(entry["Value"]))
        for name, entry in observe.metrics.metric_set.items()
        if name.startswith("Shadow") and name != "ShadowTime"
    }


@pytest.fixture
def flipped(tmp_path: Path) -> Path:
    return write_candidate("penguins", tmp_path / "c", version="1.1.0", graph_edit=swap_classes(0, 2))


def test_captured_rows_carry_the_challengers_answer_when_it_scored_them(
    service: Service, lines: list[str], flipped: Path
) -> None:
    # GIVEN capture of half the rows and a shadow of a quarter (nested samples)
    obs = observer_with(service, lines, 0.5, 0.25, flipped)
    rows = golden_rows(MODELS / "penguins") * 10
    request = predict_codec.decode({"instances": rows})
    # WHEN a request is answered
    service.dataplane.infer(request, request_id="r", observer=obs)
    captured = records(lines)
    shadowed = [r for r in captured if "shadow" in r]
    # THEN every shadowed row was captured, and some captured rows were not shadowed
    assert 0 < len(shadowed) < len(captured) < len(rows)
    for r in shadowed:
        assert r["shadow"]["agree"] is (r["shadow"]["prediction"]["label"] == r["prediction"]["label"])
    # AND the metrics count what the shadow did
    counted = shadow_metrics()
    assert counted["ShadowRows"] == len(shadowed)
    assert counted.get("ShadowDisagreements", 0) == sum(1 for r in shadowed if not r["shadow"]["agree"])


def test_without_capture_the_shadow_still_counts(service: Service, lines: list[str], flipped: Path) -> None:
    obs = observer_with(service, lines, 0.0, 1.0, flipped)
    rows = golden_rows(MODELS / "penguins")
    service.dataplane.infer(predict_codec.decode({"instances": rows}), request_id="r", observer=obs)
    assert lines == []
    assert shadow_metrics()["ShadowRows"] == len(rows)
