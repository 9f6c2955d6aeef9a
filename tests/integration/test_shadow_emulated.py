"""The shadow challenger on the real runtime: the built API function under the Lambda emulator,
shadow off and on side by side, the same events to both.

Responses must be byte-identical (the invoke payload, headers and body included); the shadow's
work shows only in the capture lines (its answer next to the champion's) and in the EMF metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.rie import BuiltFunction, EmulatedFunction
from tests.conftest import load_event
from tests.integration.test_monitoring_emulated import json_lines, wait_for_lines
from tests.unit.release.candidates import swap_classes, write_candidate

EVENTS = [
    "api_predict_one",
    "api_predict_batch",
    "api_predict_null_sex",
    "v2_infer",
    "api_unknown_category",  # refused by the champion: never reaches the shadow
    "api_model",
    "api_health",
]
CAPTURE_ALL = {"ONNXLAMBDA_CAPTURE_SAMPLE_RATE": "1", "AWS_LAMBDA_FUNCTION_VERSION": "7"}


@pytest.fixture(scope="module")
def flipped_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A challenger: the shipped penguins export with the Adelie and Gentoo weight rows swapped."""
    return write_candidate(
        "penguins",
        tmp_path_factory.mktemp("challenger") / "m",
        version="1.1.0",
        graph_edit=swap_classes(0, 2),
    )


@pytest.fixture(scope="module")
def pair(
    api_function: BuiltFunction, flipped_dir: Path
) -> Iterator[tuple[EmulatedFunction, EmulatedFunction]]:
    off = EmulatedFunction(
        api_function, extra_env={**CAPTURE_ALL, "ONNXLAMBDA_SHADOW_SAMPLE_RATE": "0"}
    ).start()
    on = EmulatedFunction(
        api_function,
        extra_env={
            **CAPTURE_ALL,
            "ONNXLAMBDA_SHADOW_SAMPLE_RATE": "1",
            "ONNXLAMBDA_CHALLENGER_DIR": str(flipped_dir),
        },
    ).start()
    try:
        yield off, on
    finally:
        off.stop()
        on.stop()


def test_responses_are_byte_identical_with_shadow_on_and_off(
    pair: tuple[EmulatedFunction, EmulatedFunction],
) -> None:
    off, on = pair
    for name in EVENTS:
        # GIVEN the same API Gateway event (same request id) to both
        payload = json.dumps(load_event(name)).encode()
        # WHEN each answers
        a, b = off.invoke_raw(payload), on.invoke_raw(payload)
        # THEN the bytes Lambda returns are the same, status, headers and body
        assert a == b, name
    # AND the shadow did score: the challenger disagreed on rows (swapped weights), in the capture
    capture = wait_for_lines(on, 0, lambda x: x.get("record_type") == "inference" and "shadow" in x, 14)
    assert capture, on.log[-20:]
    shadows = [x["shadow"] for x in capture]
    assert {s["model_version"] for s in shadows} == {"1.1.0"}
    disagreed = [x for x in capture if x["shadow"]["agree"] is False]
    assert disagreed
    for x in disagreed:
        assert x["prediction"]["label"] != x["shadow"]["prediction"]["label"]
        assert x["model_version"] == "1.0.0"  # the champion's answer next to the challenger's
    # AND in the metrics of the same invocations
    emf = wait_for_lines(on, 0, lambda x: "_aws" in x and "ShadowRows" in x, 4)
    assert sum(x["ShadowRows"][0] for x in emf) == len(capture)
    assert sum(x.get("ShadowDisagreements", [0])[0] for x in emf) == len(disagreed)
    # AND the function with shadow off emitted none of it
    off_lines = json_lines(off.log)
    assert not [x for x in off_lines if x.get("record_type") == "inference" and "shadow" in x]
    assert not [x for x in off_lines if "_aws" in x and any(k.startswith("Shadow") for k in x)]
    assert len([x for x in off_lines if x.get("record_type") == "inference"]) == len(capture)


def test_the_challenger_is_named_at_init(
    pair: tuple[EmulatedFunction, EmulatedFunction], flipped_dir: Path
) -> None:
    _, on = pair
    sha = json.loads((flipped_dir / "manifest.json").read_text())["sha256"]
    [line] = [x for x in json_lines(on.log) if x.get("message") == "shadow challenger"]
    assert (line["shadow"], line["challenger_model_version"], line["challenger_model_sha256"]) == (
        "on",
        "1.1.0",
        sha,
    )


def test_the_built_challenger_layer_without_a_challenger_shadows_nothing(api_function: BuiltFunction) -> None:
    # GIVEN the build's own challenger layer (built without CHALLENGER: a NONE marker) and shadow on
    layer = Path(api_function.opt_env()["ONNXLAMBDA_CHALLENGER_DIR"])
    assert sorted(p.name for p in layer.iterdir()) == ["NONE"]
    with EmulatedFunction(
        api_function, extra_env={**CAPTURE_ALL, "ONNXLAMBDA_SHADOW_SAMPLE_RATE": "1"}
    ) as emulator:
        answer: Any = emulator.invoke(load_event("api_predict_one"))
        assert answer["statusCode"] == 200
        # THEN it serves as usual and says why nothing is shadowed
        [line] = wait_for_lines(emulator, 0, lambda x: x.get("message") == "shadow challenger", 1)
        assert line["shadow"] == "off"
        assert line["reason"] == f"no challenger model in {layer}"
