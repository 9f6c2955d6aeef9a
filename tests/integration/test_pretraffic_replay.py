"""The built pre-traffic hook replaying recent capture, under the Lambda emulator, against a moto S3
capture bucket (server mode) and the built API function (also emulated).

The case the golden set cannot catch: a candidate whose golden set was regenerated with its own
(wrong) weights passes the golden gate; replaying what production actually answered fails it.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.motoserver import function_env, moto_s3
from devtools.rie import BuiltFunction, EmulatedFunction
from tests.integration.test_monitoring_emulated import json_lines
from tests.integration.test_pretraffic_hook import HOOK_EVENT, _CodeDeployRecorder
from tests.unit.release.candidates import regolden, swap_classes, write_candidate
from tests.unit.release.seeded import objects, seeded_capture

BUCKET = "onnxlambda-capture"
Run = Callable[..., tuple[dict[str, Any], list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def capture_bucket() -> Iterator[tuple[str, Any]]:
    """moto S3 on loopback with two hours of traffic the shipped model served, ending an hour ago."""
    records = seeded_capture("penguins", start=datetime.now(UTC) - timedelta(hours=3)).records
    with moto_s3(BUCKET) as (endpoint, s3):
        for key, body in objects(records).items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield endpoint, s3


@pytest.fixture
def run_hook(api_function: BuiltFunction, build_dir: Path) -> Iterator[Run]:
    started: list[EmulatedFunction] = []
    recorder = http.server.HTTPServer(("127.0.0.1", 0), _CodeDeployRecorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()

    def run(
        model_dir: Path, endpoint: str, bucket: str = BUCKET, rows: str = "300"
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The new API version and the built hook, both on `model_dir`; returns the hook's result
        and the status calls CodeDeploy received."""
        _CodeDeployRecorder.received = []
        api = EmulatedFunction(api_function, extra_env={"ONNXLAMBDA_MODEL_DIR": str(model_dir)}).start()
        started.append(api)
        hook = EmulatedFunction(
            BuiltFunction.from_build("PreTrafficHook", build_dir),
            extra_env=function_env(
                endpoint,
                ONNXLAMBDA_MODEL_DIR=str(model_dir),
                ONNXLAMBDA_TARGET_FUNCTION_VERSION="function",
                # the build's stamp names the shipped model; these runs check other model dirs
                ONNXLAMBDA_EXPECTED_MODEL_SHA256="unset",
                AWS_ENDPOINT_URL_LAMBDA=f"http://127.0.0.1:{api.port}",
                AWS_ENDPOINT_URL_CODEDEPLOY=f"http://127.0.0.1:{recorder.server_port}",
                ONNXLAMBDA_CAPTURE_BUCKET=bucket,
                ONNXLAMBDA_REPLAY_ROWS=rows,
            ),
        ).start()
        started.append(hook)
        result: dict[str, Any] = hook.invoke(HOOK_EVENT, timeout=120)
        replay_lines = [x for x in json_lines(hook.log) if x.get("message") == "replay of recent capture"]
        result["replay_logged"] = replay_lines
        return result, list(_CodeDeployRecorder.received)

    yield run
    recorder.shutdown()
    for emulator in started:
        emulator.stop()


def test_the_shipped_model_passes_the_replay(
    run_hook: Run, capture_bucket: tuple[str, Any], api_function: BuiltFunction
) -> None:
    # GIVEN the new version serves the model that served the captured traffic
    model_dir = Path(api_function.opt_env()["ONNXLAMBDA_MODEL_DIR"])
    result, calls = run_hook(model_dir, capture_bucket[0])
    # THEN Succeeded, after comparing 300 captured rows
    assert result["status"] == "Succeeded", result
    assert [c["status"] for c in calls] == ["Succeeded"]
    [logged] = result["replay_logged"]
    assert (logged["passed"], logged["replay"]["rows"], logged["replay"]["agreement"]) == (True, 300, 1.0)


def test_flipped_weights_that_pass_their_own_golden_set_fail_on_real_traffic(
    run_hook: Run, capture_bucket: tuple[str, Any], tmp_path: Path
) -> None:
    # GIVEN a candidate with the Adelie and Gentoo weights swapped, its golden set regenerated with it
    candidate = regolden(
        write_candidate("penguins", tmp_path / "m", version="1.0.1", graph_edit=swap_classes(0, 2))
    )
    # WHEN the hook runs without replay THEN the golden gate alone lets it through
    result, _ = run_hook(candidate, capture_bucket[0], rows="0")
    assert result == {"status": "Succeeded", "problems": [], "replay_logged": []}
    # WHEN it also replays recent capture THEN CodeDeploy hears Failed, and why
    result, calls = run_hook(candidate, capture_bucket[0])
    assert [c["status"] for c in calls] == ["Failed"]
    assert result["problems"]
    assert all(p.startswith("replay of 300 captured rows: ") for p in result["problems"]), result
    assert any("label agreement" in p for p in result["problems"])


def test_no_capture_yet_does_not_block_a_release(
    run_hook: Run, capture_bucket: tuple[str, Any], api_function: BuiltFunction
) -> None:
    endpoint, s3 = capture_bucket
    s3.create_bucket(Bucket="empty-capture")
    result, calls = run_hook(
        Path(api_function.opt_env()["ONNXLAMBDA_MODEL_DIR"]), endpoint, bucket="empty-capture"
    )
    assert [c["status"] for c in calls] == ["Succeeded"]
    [logged] = result["replay_logged"]
    assert logged["replay"]["skipped"] == "0 captured rows (< 20): nothing to replay yet"
