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
import subprocess
import sys
import traceback

ENDPOINT = sys.argv[1]
AWS = sys.argv[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
KEY = "AKIDSECURITY"
SECRET = "security-test-secret-0123"
HELLO = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:hello"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/r"

os.environ.update(
    {
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
)

import boto3  # noqa: E402  (after the environment is set)
import botocore.auth  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def client(secret=SECRET, validate=True):
    return boto3.client(
        "stepfunctions",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
        config=botocore.config.Config(
            retries={"max_attempts": 1},
            read_timeout=60,
            inject_host_prefix=False,
            parameter_validation=validate,
        ),
    )


def aws(*args, secret=SECRET):
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY=secret)
    return subprocess.run(
        [AWS, "stepfunctions", "--endpoint-url", ENDPOINT, "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError("no error")


def eq(found, expected, what=""):
    assert found == expected, f"{what}: expected {expected!r}, found {found!r}"


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


def main():
    failed = 0
    wanted = sys.argv[3:]
    unknown = set(wanted) - {fn.__name__ for fn in CHECKS}
    if unknown:
        sys.exit(f"no such check: {', '.join(sorted(unknown))}")
    for fn in CHECKS:
        if wanted and fn.__name__ not in wanted:
            continue
        name = fn.__name__
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Exception as e:  # noqa: BLE001 — every failure is reported, the others still run
            failed += 1
            detail = str(e) or traceback.format_exc().strip().splitlines()[-1]
            print(f"FAIL {name}: {type(e).__name__}: {detail}".replace("\n", " | "), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
