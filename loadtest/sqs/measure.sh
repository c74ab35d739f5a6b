#!/usr/bin/env bash
# Throughput of the daemon with SQS in and out (config/sqs.toml, iot-enrich), through moto's
# server as the tests run it (tests/support/moto_server.py, venv target/sqs-venv made by
# `cargo test --release`): N messages are queued, then the daemon runs until it has deleted
# them all. Prints messages/s. Usage: N=10000 loadtest/sqs/measure.sh (needs curl, bc;
# ports 5123 and 9477 free; build first: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000}
PY=target/sqs-venv/bin/python
D=$(mktemp -d)
$PY tests/support/moto_server.py -H 127.0.0.1 -p 5123 > $D/moto.log 2>&1 &
MOTO=$!
sleep 3
export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION=us-east-1
$PY - <<PY
import boto3, json
sqs = boto3.client('sqs', endpoint_url='http://127.0.0.1:5123')
for q in ['sensor-events', 'sensor-results', 'sensor-dlq']:
    sqs.create_queue(QueueName=q)
u = 'http://127.0.0.1:5123/123456789012/sensor-events'
body = open('config/state-machines/iot-enrich.input.json').read()
for i in range(0, $N, 10):
    sqs.send_message_batch(QueueUrl=u, Entries=[{'Id': str(j), 'MessageBody': body} for j in range(10)])
PY
sed -e 's|127.0.0.1:9324/000000000000|127.0.0.1:5123/123456789012|' -e 's|9464|9477|' \
    -e "s|state-machines/|$PWD/config/state-machines/|" config/sqs.toml > $D/sqs.toml
start=$(date +%s.%N)
target/release/expressway run --config $D/sqs.toml > /dev/null 2> $D/daemon.log &
DAEMON=$!
while true; do
  n=$(curl -s http://127.0.0.1:9477/metrics | grep '^expressway_sqs_deletes_total{source="sensors",result="ok"}' | awk '{print $2}')
  [ "${n:-0}" -ge "$N" ] 2>/dev/null && break
  sleep 0.2
done
end=$(date +%s.%N)
echo "$N messages in $(echo "$end - $start" | bc) s: $(echo "$N / ($end - $start)" | bc) messages/s"
curl -s http://127.0.0.1:9477/metrics | grep -E '^expressway_(sqs_sends|executions_succeeded|sqs_deletes)'
kill $DAEMON; wait $DAEMON || true
kill $MOTO; wait $MOTO 2>/dev/null || true
rm -rf $D
