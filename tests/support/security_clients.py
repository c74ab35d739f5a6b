"""The API's security checks that the real AWS clients make: aws-cli and boto3 sign with SigV4,
so what they send is what a verifier must accept, and what they send with a wrong secret or a
wrong clock is what it must refuse.

Usage: security_clients.py ENDPOINT AWS_CLI_PATH CHECK...

Prints `ok NAME` or `FAIL NAME: reason` per check, as api_clients.py does. Run by
tests/support/security.rs, which starts the daemon with the key pair below, a bearer token,
a state machine `hello`, `max_definition_bytes = 4096` and `max_state_machines = 3`.
"""

import datetime
import json
import os

import botocore.auth
import botocore.exceptions
from aws_clients import ACCOUNT, REGION, check, eq, main, run_aws, sfn_client, use_credentials

KEY = "AKIDSECURITY"
SECRET = "security-test-secret-0123"
HELLO = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:hello"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/r"

use_credentials(KEY, SECRET)


def client(secret=SECRET, validate=True):
    return sfn_client(KEY, secret, read_timeout=60, validate=validate)


def aws(*args, secret=SECRET):
    return run_aws(*args, env=dict(os.environ, AWS_SECRET_ACCESS_KEY=secret))


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError("no error")


@check
def aws_cli_and_boto3_signatures_verify():
    out = aws("list-state-machines")
    assert out.returncode == 0, f"aws-cli: exit {out.returncode}: {out.stderr.strip()}"
    assert "hello" in [m["name"] for m in json.loads(out.stdout)["stateMachines"]], out.stdout
    names = [m["name"] for m in client().list_state_machines()["stateMachines"]]
    assert "hello" in names, names
    r = client().start_sync_execution(stateMachineArn=HELLO, input='{"who": "signed"}')
    eq(json.loads(r["output"]), {"greeting": "hello signed"}, "output")


@check
def boto3_with_a_wrong_secret_is_invalid_signature_exception():
    code, message = error_code(lambda: client(secret="not-the-secret-at-all").list_state_machines())
    eq(code, "InvalidSignatureException", f"code ({message})")


@check
def aws_cli_with_a_wrong_secret_is_refused():
    out = aws("list-state-machines", secret="not-the-secret-at-all")
    assert out.returncode != 0, f"accepted: {out.stdout}"
    assert "InvalidSignatureException" in out.stderr, out.stderr


@check
def boto3_with_a_clock_ten_minutes_slow_is_signature_expired():
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: real(*a, **k) - datetime.timedelta(minutes=10)
    try:
        code, message = error_code(lambda: client().list_state_machines())
    finally:
        botocore.auth.get_current_datetime = real
    eq(code, "InvalidSignatureException", f"code ({message})")
    assert message.startswith("Signature expired: "), message


@check
def list_executions_rejects_a_bogus_status_filter():
    code, message = error_code(
        lambda: client().list_executions(stateMachineArn=HELLO, statusFilter="BOGUS")
    )
    eq(code, "ValidationException", f"code ({message})")
    assert "statusFilter" in message, message


@check
def create_state_machine_without_role_arn_is_a_validation_exception():
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    # The SDK refuses it itself (roleArn is required in its model) ...
    try:
        client().create_state_machine(name="no-role", definition=definition)
        raise AssertionError("the SDK sent it")
    except botocore.exceptions.ParamValidationError:
        pass
    # ... and so does the server when a client does not.
    code, message = error_code(
        lambda: client(validate=False).create_state_machine(name="no-role", definition=definition)
    )
    eq(code, "ValidationException", f"code ({message})")
    assert "roleArn" in message, message


@check
def a_definition_over_max_definition_bytes_is_a_validation_exception():
    big = {"Comment": "x" * 5000, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    code, message = error_code(
        lambda: client().create_state_machine(name="big", definition=json.dumps(big), roleArn=ROLE)
    )
    eq(code, "ValidationException", f"code ({message})")
    assert "'definition'" in message, message


@check
def the_state_machine_quota_is_state_machine_limit_exceeded():
    sfn = client()
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    made = []
    try:
        # `hello` and two more make three, the quota.
        for name in ["quota-1", "quota-2"]:
            made.append(sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE)["stateMachineArn"])
        code, message = error_code(
            lambda: sfn.create_state_machine(name="quota-3", definition=definition, roleArn=ROLE)
        )
        eq(code, "StateMachineLimitExceeded", f"code ({message})")
    finally:
        for arn in made:
            sfn.delete_state_machine(stateMachineArn=arn)


if __name__ == "__main__":
    main()
