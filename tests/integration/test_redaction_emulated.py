"""ONNXLAMBDA_REDACT_FIELDS under the real Lambda runtime: configured values never reach the output."""

from __future__ import annotations

import json
import time

from devtools.rie import BuiltFunction, EmulatedFunction
from tests.conftest import MODELS, golden_rows, load_event

SECRET = "Atlantis-7731-SECRET"


def test_redacted_values_never_reach_the_logs_of_the_built_function(api_function: BuiltFunction) -> None:
    # GIVEN the built function with island and body_mass_g redacted, logging at DEBUG, and data
    # capture of every scored row
    env = {
        "ONNXLAMBDA_REDACT_FIELDS": "island,body_mass_g",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "ONNXLAMBDA_CAPTURE_SAMPLE_RATE": "1",
    }
    row = dict(golden_rows(MODELS / "penguins")[0], island=SECRET, body_mass_g=987654.321)
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": [row]})
    valid = load_event("api_predict_one")
    valid["body"] = json.dumps(
        {"instances": [dict(golden_rows(MODELS / "penguins")[0], body_mass_g=4321.987)]}
    )
    with EmulatedFunction(api_function, extra_env=env) as emulator:
        # WHEN a request breaks the contract on exactly those fields, and a valid one is scored
        result = emulator.invoke(event)
        emulator.wait_for_report(1)
        scored = emulator.invoke(valid)
        emulator.wait_for_report(2)
        deadline = time.monotonic() + 10  # the log pump is a thread: let the capture line arrive
        while '"record_type":"inference"' not in "\n".join(emulator.log) and time.monotonic() < deadline:
            time.sleep(0.02)
        output = "\n".join(emulator.log)  # everything the runtime wrote: logs, EMF metrics, REPORT
    # THEN the caller learns which row, field and rule, and neither value appears anywhere
    assert result["statusCode"] == 422
    details = json.loads(result["body"])["error"]["details"]
    assert {(d["row"], d["field"], d["code"]) for d in details} == {
        (0, "island", "unknown_category"),
        (0, "body_mass_g", "out_of_range"),
    }
    assert "request refused" in output
    for text in (output, result["body"]):
        assert SECRET not in text
        assert "987654" not in text
    # AND the valid row is captured without the redacted fields (ONNXLAMBDA_REDACT_FIELDS applies to capture)
    assert scored["statusCode"] == 200
    captured = [
        json.loads(line[line.index("{") :])
        for line in output.splitlines()
        if '"record_type":"inference"' in line
    ]
    assert len(captured) == 1
    assert captured[0]["redacted"] == ["body_mass_g", "island"]
    assert not {"island", "body_mass_g"} & set(captured[0]["features"])
    assert "4321.987" not in output
