"""What api_clients.py and security_clients.py share: the endpoint and aws-cli path from the
command line, the environment the AWS clients run in, a boto3 client, aws-cli runs, and the
check runner (`@check` functions, one `ok`/`skip`/`FAIL` line each).

Each script calls `use_credentials(KEY, SECRET)` before it makes a client.
"""

import os
import subprocess
import sys
import traceback

import boto3
import botocore.config

ENDPOINT = sys.argv[1]
AWS = sys.argv[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"

CHECKS = []


def use_credentials(key, secret):
    os.environ.update(
        {
            # aws-cli and boto3 prepend `sync-` to the host for StartSyncExecution/TestState.
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
    )


def sfn_client(key, secret, read_timeout=90, validate=True):
    return boto3.client(
        "stepfunctions",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(
            retries={"max_attempts": 1},
            read_timeout=read_timeout,
            inject_host_prefix=False,
            parameter_validation=validate,
        ),
    )


def run_aws(*args, env=None):
    """aws-cli's `stepfunctions` command against the endpoint, as a finished process."""
    return subprocess.run(
        [AWS, "stepfunctions", "--endpoint-url", ENDPOINT, "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def check(fn):
    CHECKS.append(fn)
    return fn


def eq(found, expected, what=""):
    assert found == expected, f"{what}: expected {expected!r}, found {found!r}"


def main():
    """Runs the checks named after the endpoint and aws-cli path (every one without a name).
    A check that returns "skip: why" is reported as skipped."""
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
            result = fn()
            if isinstance(result, str) and result.startswith("skip: "):
                print(f"skip {name}: {result[6:]}", flush=True)
            else:
                print(f"ok {name}", flush=True)
        except Exception as e:  # noqa: BLE001 — every failure is reported, the others still run
            failed += 1
            detail = str(e) or traceback.format_exc().strip().splitlines()[-1]
            print(f"FAIL {name}: {type(e).__name__}: {detail}".replace("\n", " | "), flush=True)
    sys.exit(1 if failed else 0)
