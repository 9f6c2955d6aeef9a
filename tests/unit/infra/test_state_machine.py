"""The large-object state machine's definition, checked offline.

`sam validate --lint` does not read it: SAM turns DefinitionUri into DefinitionS3Location without
opening the file, and cfn-lint's E3601 validates only an inline Definition of an
AWS::StepFunctions::StateMachine (aws-cloudformation/cfn-lint src/cfnlint/rules/resources/
stepfunctions/StateMachineDefinition.py; serverless-application-model
samtranslator/model/stepfunctions/generators.py). AWS's own check (ValidateStateMachineDefinition)
needs an account. So these tests read statemachines/score_large_object.asl.json and hold it to the
documented Distributed Map fields, to the template that deploys it, and to least privilege.
Its behaviour is run by the local driver in tests/unit/batch/test_sfn_driver.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.unit.infra.translate import of_type, source_template, translate

ASL = ROOT / "statemachines" / "score_large_object.asl.json"
TEXT = ASL.read_text()
DEFINITION: dict[str, Any] = json.loads(TEXT)
RESOURCES = source_template()["Resources"]
MACHINE = RESOURCES["LargeObjectStateMachine"]["Properties"]
# AWS's recommended retrier for Lambda tasks
# (docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
}
STATE_TYPES = {"Task", "Map", "Choice", "Succeed", "Fail", "Pass", "Wait", "Parallel"}


def machines(definition: dict[str, Any] = DEFINITION) -> Iterator[tuple[str, dict[str, Any]]]:
    """The top-level machine and every Map's ItemProcessor, with a name."""
    yield "top", definition
    for name, state in definition["States"].items():
        if state["Type"] == "Map":
            yield from ((f"{name}/{n}", m) for n, m in machines(state["ItemProcessor"]))


def states() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, machine in machines():
        yield from machine["States"].items()


def the_map() -> dict[str, Any]:
    [state] = [s for _, s in states() if s["Type"] == "Map"]
    return state


def test_every_state_is_reachable_and_every_transition_lands_on_a_state() -> None:
    for where, machine in machines():
        names = set(machine["States"])
        assert machine["StartAt"] in names, where
        edges: dict[str, set[str]] = {}
        for name, state in machine["States"].items():
            assert state["Type"] in STATE_TYPES, (where, name)
            targets = {state[k] for k in ("Next", "Default") if k in state}
            targets |= {c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])}
            assert targets <= names, (where, name, targets - names)
            terminal = state["Type"] in {"Succeed", "Fail"} or state.get("End") is True
            assert terminal != bool(state.get("Next") or state.get("Choices")), (where, name)
            edges[name] = targets
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += edges[name]
        assert seen == names, (where, names - seen)


def test_the_map_is_distributed_over_a_json_manifest_and_every_item_carries_its_index() -> None:
    state = the_map()
    # Distributed mode needs ExecutionType; STANDARD: a range's Lambda call may take up to its 15
    # minutes plus retries, past an Express child's 5 (state-map-distributed.html).
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    # The items are the planner's ranges: a JSON array in S3 (input-output-itemreader.html), never
    # the data file (ItemReader CSV truncates and pads rows silently and copies rows into payloads).
    reader = state["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "JSON"}
    assert set(reader["Parameters"]) == {"Bucket.$", "Key.$"}
    # $$.Map.Item.Index is only available in ItemSelector (input-output-contextobject.html)
    selector = state["ItemSelector"]
    assert selector["item_index.$"] == "$$.Map.Item.Index"
    assert selector["range.$"] == "$$.Map.Item.Value"
    assert "$$.Map" not in json.dumps(state["ItemProcessor"])
    # one range per child: a range is already a batch of about BatchRangeBytes
    assert "ItemBatcher" not in state


def test_the_map_takes_its_limits_from_the_plan_and_is_never_retried_as_a_whole() -> None:
    state = the_map()
    # a static value and its Path form are exclusive (state-map-distributed.html)
    for field in ("MaxConcurrency", "ToleratedFailurePercentage", "ToleratedFailureCount"):
        assert not (field in state and f"{field}Path" in state), field
    assert state["MaxConcurrencyPath"] == "$.plan.Payload.max_concurrency"
    assert state["ToleratedFailurePercentagePath"] == "$.plan.Payload.tolerated_failure_percentage"
    # "If you define Retriers for the Distributed Map state, the retry policy applies to all of the
    # child workflow executions": retries live on the tasks, never on the Map
    assert "Retry" not in state
    [catch] = state["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    assert catch["Next"] == "ReportFailure"
    # results go to S3 (the Map's output would otherwise have to fit in 256 KiB)
    writer = state["ResultWriter"]
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    assert set(writer["Parameters"]) == {"Bucket.$", "Prefix.$"}


def test_every_task_invokes_the_range_function_with_the_recommended_retries() -> None:
    tasks = [(n, s) for n, s in states() if s["Type"] == "Task"]
    assert {n for n, _ in tasks} == {"Plan", "ScoreRange", "RecordRangeFailure", "Merge", "ReportFailure"}
    for name, state in tasks:
        assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
        params = state["Parameters"]
        # the alias before a plan exists; afterwards the version the plan ran on (the job's)
        target = params.get("FunctionName") or params["FunctionName.$"]
        assert target in {"${RangeFunctionAlias}", "$.job.function", "$.plan.Payload.job.function"}, name
        assert isinstance(params["Payload"]["action"], str), name
        retriers = state["Retry"]
        assert set(retriers[0]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS, name
        assert retriers[0]["MaxAttempts"] >= 6, name
        assert any(r["ErrorEquals"] == ["Lambda.TooManyRequestsException"] for r in retriers), name
        for i, retrier in enumerate(retriers):  # States.ALL matches everything: it must come last
            assert "States.ALL" not in retrier["ErrorEquals"] or i == len(retriers) - 1, name
    # a failed task never ends the run silently: each is caught into a failure report or a Fail
    for name, state in tasks:
        assert [c["ErrorEquals"] for c in state["Catch"]] == [["States.ALL"]], name


def test_a_range_that_fails_after_its_retries_fails_its_child_and_is_recorded() -> None:
    processor = the_map()["ItemProcessor"]["States"]
    [catch] = processor["ScoreRange"]["Catch"]
    assert catch["Next"] == "RecordRangeFailure"
    assert processor["RecordRangeFailure"]["Next"] == "RangeFailed"
    assert processor["RangeFailed"]["Type"] == "Fail"  # counted against ToleratedFailurePercentage
    top = DEFINITION["States"]
    assert top["ReportFailure"]["Next"] == "RunFailed"
    assert top["RunFailed"]["Type"] == "Fail"  # the execution fails: the alarm fires


def test_every_substitution_names_a_resource_of_the_template() -> None:
    used = set(re.findall(r"\$\{(\w+)\}", TEXT))
    assert used == set(MACHINE["DefinitionSubstitutions"])
    # ...and each is the alias of a function of this template that publishes one
    for value in MACHINE["DefinitionSubstitutions"].values():
        function, attribute = value["Ref"].split(".")
        assert attribute == "Alias"
        assert RESOURCES[function]["Type"] == "AWS::Serverless::Function"
        assert RESOURCES[function]["Properties"]["AutoPublishAlias"] == "live"
        assert RESOURCES[function]["Properties"]["Handler"] == "distributed.lambda_handler"
    assert MACHINE["DefinitionUri"] == "statemachines/score_large_object.asl.json"
    assert MACHINE["Type"] == "STANDARD"  # Distributed Map runs in Standard workflows only


def statements(role: str) -> dict[str, dict[str, Any]]:
    policies = RESOURCES[role]["Properties"]["Policies"]
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


def test_the_state_machine_role_holds_only_what_distributed_map_needs() -> None:
    name = MACHINE["Name"]["Fn::Sub"]
    role = RESOURCES["LargeObjectStateMachineRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    found = statements("LargeObjectStateMachineRole")
    # StartExecution on itself (the child workflows), DescribeExecution on its executions
    # (iam-policies-eg-dist-map.html), by name: no circular reference through the role
    assert found["StartOwnChildWorkflows"]["Action"] == "states:StartExecution"
    assert found["StartOwnChildWorkflows"]["Resource"]["Fn::Sub"].endswith(f":stateMachine:{name}")
    assert found["DescribeOwnExecutions"]["Action"] == "states:DescribeExecution"
    assert found["DescribeOwnExecutions"]["Resource"]["Fn::Sub"].endswith(f":execution:{name}:*")
    assert found["InvokeRangeFunction"]["Action"] == "lambda:InvokeFunction"
    assert found["InvokeRangeFunction"]["Resource"] == [
        {"Fn::GetAtt": ["BatchRangeFunction", "Arn"]},
        {"Fn::Sub": "${BatchRangeFunction.Arn}:*"},
    ]
    s3 = found["ManifestAndMapRunResults"]
    assert set(s3["Action"]) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload",
    }
    assert s3["Resource"]["Fn::Sub"][0].endswith("/${BatchWorkPrefix}*")
    assert set(found) == {
        "StartOwnChildWorkflows",
        "DescribeOwnExecutions",
        "InvokeRangeFunction",
        "ManifestAndMapRunResults",
    }


def test_the_range_function_reads_the_input_and_writes_only_work_and_output() -> None:
    [policy] = RESOURCES["BatchRangeFunction"]["Properties"]["Policies"]
    found = {s["Sid"]: s for s in policy["Statement"]}
    assert set(found["ReadInputPrefixOnly"]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert found["ReadInputPrefixOnly"]["Resource"]["Fn::Sub"][0].endswith("/${BatchInputPrefix}*")
    assert found["WorkPrefixParts"]["Resource"]["Fn::Sub"][0].endswith("/${BatchWorkPrefix}*")
    assert "s3:DeleteObject" in found["WorkPrefixParts"]["Action"]
    assert found["WriteOutputPrefixOnly"]["Resource"]["Fn::Sub"][0].endswith("/${BatchOutputPrefix}*")
    assert "s3:DeleteObject" not in found["WriteOutputPrefixOnly"]["Action"]
    assert found["ListOutputAndWorkPrefixes"]["Condition"]["StringLike"]["s3:prefix"] == [
        {"Fn::Sub": "${BatchOutputPrefix}*"},
        {"Fn::Sub": "${BatchWorkPrefix}*"},
    ]


def test_failed_runs_alarm_like_failed_single_path_events() -> None:
    alarm = RESOURCES["LargeObjectRunsFailedAlarm"]["Properties"]
    metrics = {
        m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"]["Metric"]
        for m in alarm["Metrics"]
        if "MetricStat" in m
    }
    assert set(metrics) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for metric in metrics.values():
        assert metric["Namespace"] == "AWS/States"
        assert metric["Dimensions"] == [
            {"Name": "StateMachineArn", "Value": {"Ref": "LargeObjectStateMachine"}}
        ]
    queue = RESOURCES["BatchFailureQueueAlarm"]["Properties"]
    assert queue["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["BatchFailureQueue", "QueueName"]}}
    ]
    for props in (alarm, queue):
        assert props["AlarmActions"] == [{"Ref": "ModelQualityTopic"}]
        assert props["TreatMissingData"] == "notBreaching"


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    [resources] = translate([["template.yaml", "LargeObjectStateMachine.Uri=s3://artifacts/asl.json"]])
    return resources


def test_sam_deploys_the_definition_file_with_its_substitutions(transformed: dict[str, Any]) -> None:
    # WHEN SAM translates the template (as CloudFormation does at deploy time)
    [machine] = of_type(transformed, "AWS::StepFunctions::StateMachine").values()
    props = machine["Properties"]
    # THEN the definition is the uploaded file, unread by the transform, with its substitutions
    assert props["DefinitionS3Location"] == {"Bucket": "artifacts", "Key": "asl.json"}
    assert props["DefinitionSubstitutions"] == {"RangeFunctionAlias": {"Ref": "BatchRangeFunctionAliaslive"}}
    assert props["RoleArn"] == {"Fn::GetAtt": ["LargeObjectStateMachineRole", "Arn"]}
    assert props["StateMachineType"] == "STANDARD"
    assert "BatchRangeFunctionAliaslive" in transformed
