"""template.yaml holds the monitoring: capture path, schedule, alarms, composite alarm, dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from onnxlambda.contract.manifest import load_manifest
from onnxlambda.monitoring import metrics as names
from onnxlambda.monitoring.capture import SUBSCRIPTION_FILTER_PATTERN
from onnxlambda_cli.cloudformation import load_template
from tests.conftest import MODELS, ROOT
from tests.unit.infra.translate import of_type


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    template = load_template((ROOT / "template.yaml").read_text())
    return dict(template["Resources"])


def test_capture_path_ships_only_capture_lines_from_the_api_logs_to_an_encrypted_bucket(
    resources: dict[str, Any],
) -> None:
    [subscription] = of_type(resources, "AWS::Logs::SubscriptionFilter").values()
    props = subscription["Properties"]
    # THEN the API log group's capture lines (the core's pattern, exactly) go to Firehose
    assert props["LogGroupName"] == {"Ref": "ApiFunctionLogs"}
    assert props["FilterPattern"] == SUBSCRIPTION_FILTER_PATTERN
    assert props["DestinationArn"] == {"Fn::GetAtt": ["CaptureDeliveryStream", "Arn"]}
    stream = resources["CaptureDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert stream["BucketARN"] == {"Fn::GetAtt": ["CaptureBucket", "Arn"]}
    # AND the objects land under the hour prefixes the monitor reads, as plain JSON lines
    assert stream["Prefix"] == "capture/!{timestamp:yyyy/MM/dd/HH}/"
    assert [p["Type"] for p in stream["ProcessingConfiguration"]["Processors"]] == [
        "Decompression",
        "CloudWatchLogProcessing",
        "AppendDelimiterToRecord",
    ]
    bucket = resources["CaptureBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    [deny] = resources["CaptureBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_monitor_runs_hourly_and_may_only_read_capture_and_write_summaries(resources: dict[str, Any]) -> None:
    monitor = resources["MonitorFunction"]["Properties"]
    assert monitor["CodeUri"] == "functions/monitor"
    [event] = monitor["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "rate(1 hour)")
    statements = monitor["Policies"][0]["Statement"]
    actions = {s["Action"] for s in statements}
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}
    put = next(s for s in statements if s["Action"] == "s3:PutObject")
    assert put["Resource"] == {"Fn::Sub": "${CaptureBucket.Arn}/monitor/*"}
    # AND the API function has no S3 permission at all (capture goes through its logs)
    assert "Policies" not in resources["ApiFunction"]["Properties"]


def alarm_metric_names(alarm: dict[str, Any]) -> set[str]:
    props = alarm["Properties"]
    found = {props["MetricName"]} if "MetricName" in props else set()
    for query in props.get("Metrics", []):
        if "MetricStat" in query:
            found.add(query["MetricStat"]["Metric"]["MetricName"])
    return found


def test_every_question_has_an_alarm(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    watched = {name: alarm_metric_names(a) for name, a in alarms.items()}
    # 1. up and fast enough: error rate, p99 latency, throttles on the live alias
    assert {"Invocations", "Errors", "InternalErrors", "Rejected_model_not_ready"} <= watched[
        "ApiErrorRateAlarm"
    ]
    assert alarms["ApiLatencyP99Alarm"]["Properties"]["ExtendedStatistic"] == "p99"
    for name in ("ApiErrorRateAlarm", "ApiLatencyP99Alarm", "ApiThrottlesAlarm"):
        text = json.dumps(alarms[name])
        assert '"Resource", "Value": {"Fn::Sub": "${ApiFunction}:live"}' in text
    # 2. input health and input drift
    assert {"Requests", "Rejected_validation_failed"} <= watched["InputRejectRateAlarm"]
    assert {"MissingValues", "Predictions"} <= watched["InputMissingValuesAlarm"]
    assert watched["FeatureDriftAlarm"] == {names.DRIFTED_FEATURES}
    # 3. output drift and the mean score's anomaly band
    assert watched["OutputDriftAlarm"] == {names.OUTPUT_DRIFT}
    anomaly = alarms["MeanScoreAnomalyAlarm"]["Properties"]
    assert watched["MeanScoreAnomalyAlarm"] == {names.MEAN_SCORE}
    assert any("ANOMALY_DETECTION_BAND" in q.get("Expression", "") for q in anomaly["Metrics"])
    # 4. business impact relative to the manifest's evaluation metric
    assert watched["LivePerformanceAlarm"] == {names.PERFORMANCE_RATIO}
    # AND drift alarms need two consecutive windows and ignore gated (silent) windows
    for name in ("FeatureDriftAlarm", "OutputDriftAlarm"):
        props = alarms[name]["Properties"]
        assert (props["DatapointsToAlarm"], props["TreatMissingData"]) == (2, "notBreaching")


def test_alarms_watch_metrics_that_the_code_emits(resources: dict[str, Any]) -> None:
    # GIVEN every custom metric an alarm names
    manifest = load_manifest(MODELS / "penguins")
    emitted = set(names.api_metric_names(manifest)) | set(names.monitor_metric_names(manifest))
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        for query in [
            alarm["Properties"],
            *[q["MetricStat"]["Metric"] for q in alarm["Properties"].get("Metrics", []) if "MetricStat" in q],
        ]:
            if query.get("Namespace") == names.NAMESPACE:
                # THEN the code emits it, with exactly the one dimension the alarm names: this
                # stack's service name (Globals POWERTOOLS_SERVICE_NAME), never another stack's
                assert query["MetricName"] in emitted, name
                assert query["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}], name


def test_the_composite_alarm_pages_on_service_health_and_live_performance(resources: dict[str, Any]) -> None:
    [page] = of_type(resources, "AWS::CloudWatch::CompositeAlarm").values()
    rule = page["Properties"]["AlarmRule"]["Fn::Sub"]
    assert set(re.findall(r"ALARM\(\"\$\{(\w+)\}\"\)", rule)) == {
        "ApiErrorRateAlarm",
        "ApiLatencyP99Alarm",
        "ApiThrottlesAlarm",
        "LivePerformanceAlarm",
    }
    assert page["Properties"]["AlarmActions"] == [{"Ref": "PageTopic"}]


def test_the_dashboard_answers_the_four_questions(resources: dict[str, Any]) -> None:
    [dashboard] = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body_text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # The body is JSON once CloudFormation substitutes ${...}; substitute placeholders here.
    body = json.loads(re.sub(r"\$\{[^}]+\}", "0", body_text))
    markdown = [w["properties"]["markdown"] for w in body["widgets"] if w["type"] == "text"]
    assert [m.split(".")[0] for m in markdown] == ["## 1", "## 2", "## 3", "## 4"]
    text = json.dumps(body)
    # AND every custom metric it shows is this stack's: by dimension, or by a SEARCH on it
    custom = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    for metric in custom:
        if metric[0] == names.NAMESPACE:
            assert metric[metric.index("service") + 1] == "0", metric  # "${AWS::StackName}" substituted
        elif "expression" in metric[0] and "SEARCH" in metric[0]["expression"]:
            assert 'service="0"' in metric[0]["expression"], metric
    for metric in (
        "Requests",
        "Duration",
        "Missing",
        "PSI",
        "JSDistance",
        "MeanScore",
        "ClassShare",
        "PerformanceRatio",
    ):
        assert metric in text
