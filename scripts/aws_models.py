#!/usr/bin/env python3
"""Writes the AWS API models that `aws-sdk:*` Tasks are served from.

Each supported service's botocore model (from PyPI's `botocore`, the data every AWS SDK's
models are generated from) is trimmed to what building requests and reading responses needs
(no documentation, examples or paginators) and written, minified, to
src/integrations/aws/models/<name>.json, where <name> is the service's name in Step Functions'
`arn:aws:states:::aws-sdk:<name>:<action>` resources.

    pip install botocore && python3 scripts/aws_models.py

Add a service by adding it to SERVICES and running this again.
"""

import gzip
import json
import os
import sys

import botocore

# Step Functions' service name -> botocore's.
SERVICES = {
    "dynamodb": "dynamodb",
    "eventbridge": "events",
    "firehose": "firehose",
    "kinesis": "kinesis",
    "lambda": "lambda",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
    "sfn": "stepfunctions",
    "sns": "sns",
    "sqs": "sqs",
    "ssm": "ssm",
    "sts": "sts",
}

METADATA = ["apiVersion", "endpointPrefix", "globalEndpoint", "jsonVersion", "protocol",
            "serviceId", "signingName", "targetPrefix", "xmlNamespace"]
OPERATION = ["http", "input", "output", "errors", "endpoint"]
DROPPED = {"documentation", "documentationUrl", "deprecatedMessage", "examples", "box",
           "deprecated", "wrapper", "sensitive", "idempotencyToken", "min", "max", "pattern",
           "contextParam", "union", "retryable", "document", "requiresLength", "streaming",
           "httpChecksum", "requestAlgorithmMember", "requestChecksumRequired",
           "authtype", "auth", "staticContextParams", "unsignedPayload", "enum"}


def trim(value):
    if isinstance(value, dict):
        return {k: trim(v) for k, v in value.items() if k not in DROPPED}
    if isinstance(value, list):
        return [trim(v) for v in value]
    return value


def latest(service_dir):
    versions = sorted(v for v in os.listdir(service_dir) if v[0].isdigit())
    return os.path.join(service_dir, versions[-1], "service-2.json.gz")


def main():
    data = os.path.join(os.path.dirname(botocore.__file__), "data")
    out = os.path.join(os.path.dirname(__file__), "..", "src", "integrations", "aws", "models")
    os.makedirs(out, exist_ok=True)
    for name, botocore_name in sorted(SERVICES.items()):
        model = json.load(gzip.open(latest(os.path.join(data, botocore_name))))
        trimmed = {
            "botocore": botocore.__version__,
            "metadata": {k: model["metadata"][k] for k in METADATA if k in model["metadata"]},
            "operations": {
                op: trim({k: spec[k] for k in OPERATION if k in spec})
                for op, spec in sorted(model["operations"].items())
            },
            "shapes": trim({k: model["shapes"][k] for k in sorted(model["shapes"])}),
        }
        # Error shapes keep their wire code (`error.code`) and status, which name errors.
        for shape_name, shape in model["shapes"].items():
            if "error" in shape:
                trimmed["shapes"][shape_name]["error"] = shape["error"]
            if shape.get("exception"):
                trimmed["shapes"][shape_name]["exception"] = True
        path = os.path.join(out, f"{name}.json")
        with open(path, "w") as f:
            # Members keep the model's order: XML schemas (S3's) are ordered.
            json.dump(trimmed, f, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {os.path.getsize(path)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
