"""boto3 calls against moto for the tests: the `aws` group (tests/support/aws.rs) makes its
resources and reads back what the state machines sent with it, scripts/conformance_gate.py
makes the resources the conformance cases name. Run with the moto venv's python
(tests/support/moto_venv.py, python.rs).

    python aws_fixtures.py ENDPOINT ACCESS_KEY_ID < calls.json

`calls.json` is a list of `[service, operation, params]` (boto3's client names and snake_case
operations, e.g. `["dynamodb", "create_table", {...}]`), made in order with
`AWS_SECRET_ACCESS_KEY=test` in us-east-1; moto takes a 12-digit numeric access key id as the
account. Prints one JSON list, `{"ok": response}` or `{"error": {"code", "message"}}` per call,
without `ResponseMetadata`; a streaming body is read, bytes are `{"base64": …}`, timestamps
ISO-8601.
"""
import base64
import datetime
import json
import sys

import boto3
import botocore.config
import botocore.exceptions
import botocore.response


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, botocore.response.StreamingBody):
        value = value.read()
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def main():
    endpoint, key = sys.argv[1], sys.argv[2]
    session = boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key="test", region_name="us-east-1"
    )
    config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    clients = {}
    out = []
    for service, operation, params in json.load(sys.stdin):
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=endpoint, config=config)
        try:
            out.append({"ok": plain(getattr(clients[service], operation)(**params))})
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            out.append({"error": {"code": error.get("Code"), "message": error.get("Message")}})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
