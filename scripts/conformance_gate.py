#!/usr/bin/env python3
"""Runs the AWS-recorded conformance corpus, an external suite (../shared/conformance, or
$EXPRESSWAY_CONFORMANCE_DIR), against `expressway exec` and fails if any category passes
fewer cases than recorded in conformance/baseline.json.

Three kinds of cases run: the pure ones; those that call Lambda (the runner serves each
case's functions over the Lambda Invoke API and `exec --lambda-endpoint` sends every Lambda
call there); and those whose `needs` name AWS services (dynamodb, sqs, events, aws-sdk:s3, …),
against a moto server this script starts from the pinned venv the Rust tests use
(tests/support/moto_venv.py, target/sqs-venv), every request in the corpus's account
111111111111. Before they run, the resources their inputs name are made there, by generic rules
on the fields (see `resources`), and the engine reaches moto as AWS SDKs do: AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID=111111111111, AWS_SECRET_ACCESS_KEY=test, AWS_REGION=us-east-1. When the venv
cannot be made those cases are left out, saying so, and each category's baseline is lowered by
its number of them (an error instead under EXPRESSWAY_REQUIRE_ALL=1).
Their pass count is printed on a line of its own, with why each failing one failed.

    scripts/conformance_gate.py [--update]     (--update rewrites the baseline)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import moto_venv  # noqa: E402  (tests/support, standard library only)

CONFORMANCE = os.environ.get(
    "EXPRESSWAY_CONFORMANCE_DIR", os.path.join(ROOT, "..", "shared", "conformance")
)
RUNNER = os.path.join(CONFORMANCE, "run.py")
BASELINE = os.path.join(ROOT, "conformance", "baseline.json")
BINARY = os.path.join(ROOT, "target", "release", "expressway")
FIXTURES = os.path.join(ROOT, "tests", "support", "aws_fixtures.py")
CMD = (
    BINARY
    + " exec --workflow-type {type} --definition {definition} --input {input}"
    + " --lambda-endpoint {lambda_endpoint}"
)
# The corpus's synthetic account and region (its ARNs and queue URLs).
ACCOUNT = "111111111111"
REGION = "us-east-1"
# A resource whose name says it does not exist is left missing: the case is about its absence.
MISSING = re.compile(r"no.?such|nonexistent|does.?not.?exist", re.IGNORECASE)
TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
QUEUE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,80}(\.fifo)?")
BUCKET_NAME = re.compile(r"[a-zA-Z0-9.-]{3,63}")


def aws_needs(case):
    """The AWS services a case calls (Lambda has the runner's own server)."""
    return [n for n in case.get("needs", []) if n != "lambda"]


def load_cases():
    cases = []
    root = os.path.join(CONFORMANCE, "cases")
    for category in sorted(os.listdir(root)):
        folder = os.path.join(root, category)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    cases.append((category, json.load(f)))
    return cases


def resources(case):
    """The boto3 calls making what a case's input names (and its definition's literal
    Parameters), as `[service, operation, params]`: a DynamoDB table per `TableName` (its HASH key
    the attribute of the `Key` beside it, else `id` or the first attribute of the `Item`), an SQS
    queue per `QueueUrl` (named by its last segment), an SNS topic per `TopicArn`, an S3 bucket
    per `Bucket`, a Kinesis stream per `StreamName`; none for a name that says it does not exist
    or that the service would refuse."""
    calls = []

    def table(name, where):
        key = where.get("Key")
        item = where.get("Item")
        if isinstance(key, dict) and len(key) == 1:
            attribute, value = next(iter(key.items()))
        elif isinstance(item, dict) and item:
            attribute = "id" if "id" in item else sorted(item)[0]
            value = item[attribute]
        else:
            return
        kind = next(iter(value)) if isinstance(value, dict) and len(value) == 1 else "S"
        kind = kind if kind in ("S", "N", "B") else "S"
        calls.append(["dynamodb", "create_table", {
            "TableName": name,
            "KeySchema": [{"AttributeName": attribute, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": attribute, "AttributeType": kind}],
            "BillingMode": "PAY_PER_REQUEST",
        }])

    def walk(value):
        if isinstance(value, list):
            for v in value:
                walk(v)
            return
        if not isinstance(value, dict):
            return
        for field, v in value.items():
            if isinstance(v, str) and not MISSING.search(v):
                if field == "TableName" and TABLE_NAME.fullmatch(v):
                    table(v, value)
                elif field == "QueueUrl":
                    name = v.rstrip("/").rsplit("/", 1)[-1]
                    if QUEUE_NAME.fullmatch(name):
                        attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
                        calls.append(["sqs", "create_queue",
                                      {"QueueName": name, "Attributes": attributes}])
                elif field == "TopicArn" and v.startswith("arn:"):
                    calls.append(["sns", "create_topic", {"Name": v.rsplit(":", 1)[-1]}])
                elif field == "Bucket" and BUCKET_NAME.fullmatch(v):
                    calls.append(["s3", "create_bucket", {"Bucket": v}])
                elif field == "StreamName":
                    calls.append(["kinesis", "create_stream", {"StreamName": v, "ShardCount": 1}])
            walk(v)

    walk(case.get("input"))
    walk(case.get("definition"))
    return calls


class Moto:
    """moto's server for the cases that call AWS services, their resources made."""

    def __init__(self, cases, tmp):
        python = moto_venv.venv_python()
        self.process, self.endpoint = moto_venv.start_server(
            python, os.path.join(tmp, "moto.log"), account=ACCOUNT
        )
        calls, seen = [], set()
        for _, case in cases:
            for call in resources(case):
                key = json.dumps(call, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    calls.append(call)
        made = subprocess.run(
            [python, FIXTURES, self.endpoint, ACCOUNT],
            input=json.dumps(calls), capture_output=True, text=True,
        )
        if made.returncode != 0:
            self.close()
            raise RuntimeError(f"making the cases' resources in moto: {made.stderr.strip()}")
        for call, result in zip(calls, json.loads(made.stdout)):
            if "ok" not in result:
                print(f"conformance: moto refused {call[0]} {call[1]} {call[2]}: {result}",
                      file=sys.stderr)
        self.made = len(calls)

    def env(self):
        """The engine's environment: moto for every AWS service, the corpus's account."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCOUNT,
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # No profile of the machine's ~/.aws can point elsewhere.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        return env

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def why(result):
    """A failing case's first difference (or the runner's error), on one line."""
    detail = result.get("detail")
    if isinstance(detail, list) and detail:
        d = detail[0]
        text = (f"at {d['path']}: expected {json.dumps(d['expected'])[:300]}"
                f" got {json.dumps(d['actual'])[:300]}")
        return text + (f" (+{len(detail) - 1} more)" if len(detail) > 1 else "")
    return str(detail)[:600]


def main() -> int:
    if not os.path.exists(RUNNER):
        print(f"conformance runner not found at {RUNNER}", file=sys.stderr)
        return 1
    aws_cases = [(c, case) for c, case in load_cases() if aws_needs(case)]
    aws_names = {(c, case["name"]) for c, case in aws_cases}
    allowed = {"lambda"}
    with tempfile.TemporaryDirectory() as tmp:
        moto = None
        ran_aws = False
        try:
            moto = Moto(aws_cases, tmp)
            allowed |= {n for _, case in aws_cases for n in aws_needs(case)}
            ran_aws = True
            print(f"conformance: moto on {moto.endpoint} with {moto.made} resources for "
                  f"{len(aws_cases)} cases that call AWS services")
        except RuntimeError as e:
            if os.environ.get("EXPRESSWAY_REQUIRE_ALL") == "1":
                print(f"error: no moto for the cases that call AWS services: {e} "
                      "(required: EXPRESSWAY_REQUIRE_ALL=1)", file=sys.stderr)
                return 1
            print(f"conformance: no moto ({e}); the {len(aws_cases)} cases that call AWS "
                  "services do not run")
        report_path = os.path.join(tmp, "report.json")
        try:
            subprocess.run(
                [
                    sys.executable, RUNNER, "--allow-needs", ",".join(sorted(allowed)),
                    "--lambda-server", "-j", "4", "--cmd", CMD, "--json-report", report_path,
                ],
                check=False,
                stdout=subprocess.DEVNULL,
                env=moto.env() if moto else None,
            )
        finally:
            if moto:
                moto.close()
        with open(report_path) as f:
            report = json.load(f)
    results = report["results"] if isinstance(report, dict) else report
    passed, total = {}, {}
    for r in results:
        cat = r["category"]
        total[cat] = total.get(cat, 0) + 1
        passed[cat] = passed.get(cat, 0) + (r["outcome"] == "pass")
    if "--update" in sys.argv and aws_cases and not ran_aws:
        print("conformance: baseline not updated: the cases that call AWS services did not run",
              file=sys.stderr)
    elif "--update" in sys.argv:
        with open(BASELINE, "w") as f:
            json.dump({c: passed[c] for c in sorted(passed)}, f, indent=2)
            f.write("\n")
        print(f"baseline written to {BASELINE}")
    with open(BASELINE) as f:
        baseline = json.load(f)
    # Without moto a category's cases that call AWS services do not run: its bar drops by their
    # number (the most they can hold of its baseline).
    not_run = {}
    if not ran_aws:
        for cat, _ in aws_cases:
            not_run[cat] = not_run.get(cat, 0) + 1
    regressions = []
    for cat in sorted(total):
        want = max(0, baseline.get(cat, 0) - not_run.get(cat, 0))
        mark = "" if passed[cat] >= want else f"   REGRESSION (baseline {want})"
        print(f"conformance {cat:<22} {passed[cat]:>4}/{total[cat]:<4}{mark}")
        if passed[cat] < want:
            regressions.append(cat)
    aws = [r for r in results if (r["category"], r["name"]) in aws_names]
    others = [r for r in results if (r["category"], r["name"]) not in aws_names]
    n_pass = sum(r["outcome"] == "pass" for r in others)
    print(f"conformance: {n_pass} of {len(others)} cases (pure and Lambda) pass")
    if aws:
        aws_pass = sum(r["outcome"] == "pass" for r in aws)
        print(f"conformance: {aws_pass} of {len(aws)} cases calling AWS services (moto) pass")
        for r in aws:
            if r["outcome"] != "pass":
                print(f"  {r['outcome']} {r['category']}/{r['name']}: {why(r)}")
    if regressions:
        print(f"conformance regressed in: {', '.join(regressions)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
