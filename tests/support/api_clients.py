"""Drives a running `expressway run` API with the real AWS clients: aws-cli and boto3.

Usage: api_clients.py ENDPOINT AWS_CLI_PATH [CHECK...]

Runs the named checks (every one without a name) and prints one line per check: `ok NAME`
or `FAIL NAME: reason`, and `skip NAME: reason`. Run by tests/support/api.rs, which starts
the daemon (with the key pair KEY/SECRET, a state machine `hello` and the definitions
below), makes the venv, and runs each check on its own: it finds them by the `@check` line
above their `def`.
"""

import json
import threading
import time

import botocore.exceptions
from aws_clients import ACCOUNT, REGION, check, eq, main, run_aws, sfn_client, use_credentials

KEY = "AKIDEXPRESSWAY"
SECRET = "expressway-api-test-secret"
HELLO = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:hello"

use_credentials(KEY, SECRET)


def aws(*args, expect_ok=True):
    out = run_aws(*args)
    if expect_ok:
        assert out.returncode == 0, f"aws {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}"
        return json.loads(out.stdout) if out.stdout.strip() else {}
    return out


def client(key=KEY):
    return sfn_client(key, SECRET)


# ---- aws-cli -------------------------------------------------------------------------------


@check
def cli_list_and_describe_state_machines():
    names = [m["name"] for m in aws("list-state-machines")["stateMachines"]]
    assert "hello" in names, names
    d = aws("describe-state-machine", "--state-machine-arn", HELLO)
    eq(d["name"], "hello", "name")
    eq(d["type"], "EXPRESS", "type")
    json.loads(d["definition"])


@check
def cli_start_sync_execution():
    r = aws("start-sync-execution", "--state-machine-arn", HELLO, "--input", '{"who": "cli"}', "--name", "cli-sync")
    eq(r["status"], "SUCCEEDED", "status")
    eq(json.loads(r["output"]), {"greeting": "hello cli"}, "output")
    assert r["executionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:express:hello:cli-sync:"), r


@check
def cli_create_state_machine_and_start_execution():
    definition = {
        "StartAt": "Wait",
        "States": {
            # Long enough that the next aws-cli call (~1 s to start on a loaded machine) still
            # finds it running.
            "Wait": {"Type": "Wait", "Seconds": 4, "Next": "Done"},
            "Done": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "End": True},
        },
    }
    created = aws(
        "create-state-machine", "--name", "cli-made", "--type", "EXPRESS",
        "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/r", "--definition", json.dumps(definition),
    )
    arn = created["stateMachineArn"]
    eq(arn, f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:cli-made", "arn")
    d = aws("describe-state-machine", "--state-machine-arn", arn)
    eq(json.loads(d["definition"]), definition, "definition")
    started = aws("start-execution", "--state-machine-arn", arn, "--input", '{"n": 41}')
    first = aws("describe-execution", "--execution-arn", started["executionArn"])
    eq(first["status"], "RUNNING", "status while waiting")
    deadline = time.time() + 20
    while True:
        d = aws("describe-execution", "--execution-arn", started["executionArn"])
        if d["status"] != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.2)
    eq(d["status"], "SUCCEEDED", "status")
    eq(json.loads(d["output"]), {"n": 42}, "output")
    listed = aws("list-executions", "--state-machine-arn", arn)["executions"]
    eq([e["executionArn"] for e in listed], [started["executionArn"]], "list-executions")


@check
def cli_invalid_definition_is_rejected():
    out = aws(
        "create-state-machine", "--name", "broken", "--role-arn", "arn:aws:iam::123456789012:role/r",
        "--definition", '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}',
        expect_ok=False,
    )
    assert out.returncode != 0 and "InvalidDefinition" in out.stderr, out.stderr


@check
def cli_describe_missing_execution():
    out = aws(
        "describe-execution", "--execution-arn",
        f"arn:aws:states:{REGION}:{ACCOUNT}:express:hello:nope:00000000-0000-0000-0000-000000000000",
        expect_ok=False,
    )
    assert out.returncode != 0 and "(ExecutionDoesNotExist)" in out.stderr, out.stderr


@check
def cli_get_execution_history_of_an_express_execution():
    r = aws("start-sync-execution", "--state-machine-arn", HELLO, "--input", '{"who": "history"}')
    arn = r["executionArn"]
    events = aws("get-execution-history", "--execution-arn", arn)["events"]
    eq([e["type"] for e in events],
       ["ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"], "types")
    eq([(e["id"], e["previousEventId"]) for e in events], [(1, 0), (2, 0), (3, 2), (4, 3)], "ids")
    entered = events[1]["stateEnteredEventDetails"]
    eq(entered["name"], "P", "state name")
    eq(json.loads(entered["input"]), {"who": "history"}, "state input")
    eq(json.loads(events[3]["executionSucceededEventDetails"]["output"]), {"greeting": "hello history"}, "output")
    page = aws("get-execution-history", "--execution-arn", arn, "--max-results", "1", "--no-paginate", "--reverse-order")
    eq([e["type"] for e in page["events"]], ["ExecutionSucceeded"], "one event, newest first")
    assert "nextToken" in page, page
    bare = aws("get-execution-history", "--execution-arn", arn, "--no-include-execution-data")["events"]
    assert "input" not in bare[1]["stateEnteredEventDetails"], bare[1]
    d = aws("describe-state-machine-for-execution", "--execution-arn", arn)
    eq(d["name"], "hello", "state machine")
    eq(d["stateMachineArn"], HELLO, "state machine arn")
    json.loads(d["definition"])


@check
def cli_validate_state_machine_definition():
    bad = aws("validate-state-machine-definition", "--definition",
              '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}')
    eq(bad["result"], "FAIL", "result")
    eq(bad["diagnostics"][0]["location"], "/States/A/Next", "location")
    eq(bad["diagnostics"][0]["severity"], "ERROR", "severity")
    good = aws("validate-state-machine-definition", "--definition",
               '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}')
    eq((good["result"], good["diagnostics"]), ("OK", []), "valid definition")


@check
def cli_test_state():
    r = aws("test-state", "--definition",
            '{"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "Next": "After"}',
            "--input", '{"a": 1, "b": 2}', "--inspection-level", "DEBUG")
    eq((r["status"], json.loads(r["output"]), r["nextState"]), ("SUCCEEDED", {"sum": 3}, "After"), "test-state")
    eq(json.loads(r["inspectionData"]["input"]), {"a": 1, "b": 2}, "inspectionData.input")


# ---- boto3 ---------------------------------------------------------------------------------


@check
def boto3_errors_are_modelled_exceptions():
    sfn = client()
    try:
        sfn.describe_execution(executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:express:hello:x:y")
        raise AssertionError("no exception")
    except sfn.exceptions.ExecutionDoesNotExist:
        pass
    try:
        sfn.start_execution(stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:absent")
        raise AssertionError("no exception")
    except sfn.exceptions.StateMachineDoesNotExist:
        pass
    try:
        client(key="AKIDWRONG").list_state_machines()
        raise AssertionError("no exception")
    except botocore.exceptions.ClientError as e:
        eq(e.response["Error"]["Code"], "UnrecognizedClientException", "wrong key")


@check
def boto3_get_execution_history_pages_and_names_failures():
    sfn = client()
    r = sfn.start_sync_execution(stateMachineArn=HELLO, input='{"who": "pages"}')
    pages = list(sfn.get_paginator("get_execution_history").paginate(
        executionArn=r["executionArn"], PaginationConfig={"PageSize": 1}))
    eq([[e["id"] for e in p["events"]] for p in pages], [[1], [2], [3], [4]], "one event a page")
    # A failure: the definition's Fail state, kept with its error and cause.
    definition = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Bad.Thing", "Cause": "it broke"}}}
    arn = sfn.create_state_machine(
        name="history-fails", definition=json.dumps(definition), type="EXPRESS",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")["stateMachineArn"]
    failed = sfn.start_sync_execution(stateMachineArn=arn, input="{}")
    eq(failed["status"], "FAILED", "status")
    events = sfn.get_execution_history(executionArn=failed["executionArn"], reverseOrder=True)["events"]
    eq(events[0]["type"], "ExecutionFailed", "newest first")
    eq(events[0]["executionFailedEventDetails"], {"error": "Bad.Thing", "cause": "it broke"}, "failure")
    d = sfn.describe_state_machine_for_execution(executionArn=failed["executionArn"])
    eq(json.loads(d["definition"]), definition, "definition")
    try:
        sfn.get_execution_history(executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:express:hello:x:y")
        raise AssertionError("no exception")
    except sfn.exceptions.ExecutionDoesNotExist:
        pass


@check
def boto3_start_sync_execution_and_nested_sync():
    sfn = client()
    r = sfn.start_sync_execution(stateMachineArn=HELLO, input='{"who": "boto3"}')
    eq(r["status"], "SUCCEEDED", "status")
    eq(json.loads(r["output"]), {"greeting": "hello boto3"}, "output")
    parent = {
        "StartAt": "Child",
        "States": {
            "Child": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": HELLO, "Input": {"who.$": "$.who"}},
                "OutputPath": "$.Output",
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(name="boto3-parent", definition=json.dumps(parent),
                                   roleArn=f"arn:aws:iam::{ACCOUNT}:role/r", type="EXPRESS")["stateMachineArn"]
    r = sfn.start_sync_execution(stateMachineArn=arn, input='{"who": "nested"}')
    eq(r["status"], "SUCCEEDED", f"status ({r.get('error')}: {r.get('cause')})")
    eq(json.loads(r["output"]), {"greeting": "hello nested"}, "output")


@check
def boto3_activity_worker():
    sfn = client()
    activity = sfn.create_activity(name="boto3-activity")["activityArn"]
    eq(sfn.describe_activity(activityArn=activity)["name"], "boto3-activity", "describe-activity")
    assert activity in [a["activityArn"] for a in sfn.list_activities()["activities"]]
    definition = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": activity, "TimeoutSeconds": 30, "End": True}},
    }
    arn = sfn.create_state_machine(name="boto3-activity-sm", definition=json.dumps(definition),
                                   roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")["stateMachineArn"]
    worked = []

    def worker():
        worker_client = client()
        for _ in range(3):
            task = worker_client.get_activity_task(activityArn=activity, workerName="w1")
            if task.get("taskToken"):
                payload = json.loads(task["input"])
                worked.append(payload)
                worker_client.send_task_success(taskToken=task["taskToken"],
                                                output=json.dumps({"doubled": payload["n"] * 2}))
                return

    t = threading.Thread(target=worker)
    t.start()
    r = sfn.start_sync_execution(stateMachineArn=arn, input='{"n": 21}')
    t.join(timeout=60)
    eq(worked, [{"n": 21}], "the worker's task input")
    eq((r["status"], json.loads(r.get("output", "null"))), ("SUCCEEDED", {"doubled": 42}), "execution")
    sfn.delete_activity(activityArn=activity)


@check
def boto3_wait_for_task_token():
    sfn = client()
    child = {"StartAt": "Hold", "States": {"Hold": {"Type": "Pass", "End": True}}}
    child_arn = sfn.create_state_machine(name="token-child", definition=json.dumps(child),
                                         roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")["stateMachineArn"]
    parent = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.waitForTaskToken",
                "Parameters": {"StateMachineArn": child_arn, "Input": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": 60,
                "End": True,
            }
        },
    }
    parent_arn = sfn.create_state_machine(name="token-parent", definition=json.dumps(parent),
                                          roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=parent_arn, input="{}")
    token = None
    deadline = time.time() + 10
    while token is None and time.time() < deadline:
        for e in sfn.list_executions(stateMachineArn=child_arn)["executions"]:
            d = sfn.describe_execution(executionArn=e["executionArn"])
            token = json.loads(d["input"]).get("token")
        time.sleep(0.1)
    assert token, "the child execution never showed the task token"
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output='{"approved": true}')
    deadline = time.time() + 10
    while True:
        d = sfn.describe_execution(executionArn=started["executionArn"])
        if d["status"] != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.1)
    eq((d["status"], json.loads(d.get("output", "null"))), ("SUCCEEDED", {"approved": True}), "parent")
    try:
        sfn.send_task_success(taskToken=token, output="{}")
        raise AssertionError("a used token was accepted")
    except (sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken, sfn.exceptions.TaskTimedOut):
        pass


if __name__ == "__main__":
    main()
