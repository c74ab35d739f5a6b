// The four benchmark workflows on aws-local-stepfunctions: one process, the definition built
// once, a warm-up, then sequential executions for a fixed time, as the engine's own
// single-thread figure is taken. Prints transitions/s per workflow.
//   node bench.mjs [seconds per workflow]
import { StateMachine } from 'aws-local-stepfunctions';
import { readFileSync } from 'node:fs';

const dir = new URL('../../benches/workflows/', import.meta.url);
// State transitions per execution (benches/workflows, the shared bench README).
const workflows = { 'pass-chain': 10, 'choice-loop': 202, 'iot-enrich': 15, parallel: 11 };
const seconds = Number(process.argv[2] ?? 5);

for (const [name, transitions] of Object.entries(workflows)) {
  const definition = JSON.parse(readFileSync(new URL(`${name}.asl.json`, dir)));
  const input = JSON.parse(readFileSync(new URL(`${name}.input.json`, dir)));
  const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
  for (let i = 0; i < 200; i++) await machine.run(structuredClone(input)).result;
  let runs = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(seconds * 1e9);
  while (process.hrtime.bigint() < end) {
    await machine.run(structuredClone(input)).result;
    runs++;
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`${name}: ${runs} executions in ${secs.toFixed(1)} s, ${Math.round((runs * transitions) / secs)} transitions/s`);
}
