"""REDACT_FIELDS under the real Lambda runtime: configured values never reach the function's output."""

from __future__ import annotations

import json

from devtools.rie import BuiltFunction, EmulatedFunction
from tests.conftest import MODELS, golden_rows, load_event

SECRET = "Atlantis-7731-SECRET"


def test_redacted_values_never_reach_the_logs_of_the_built_function(api_function: BuiltFunction) -> None:
    # GIVEN the built function with island and body_mass_g redacted, logging at DEBUG
    env = {"REDACT_FIELDS": "island,body_mass_g", "POWERTOOLS_LOG_LEVEL": "DEBUG"}
    row = dict(golden_rows(MODELS / "penguins")[0], island=SECRET, body_mass_g=987654.321)
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": [row]})
    with EmulatedFunction(api_function, extra_env=env) as emulator:
        # WHEN a request breaks the contract on exactly those fields
        result = emulator.invoke(event)
        emulator.wait_for_report(1)
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
