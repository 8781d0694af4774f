// Times the official Optimizely JavaScript SDK (@optimizely/optimizely-sdk 6.x) on the same plan as
// flagbridge's criterion benches (../cases.json: datafiles, flags, users): decide for the cases
// (a)..(e) on the small and large datafile, decideAll on the large one, and client creation
// (parse) per datafile. In-process, after warm-up, no event processor (so no events) and
// DISABLE_DECISION_EVENT on every call, no logger.
//
// Usage: node bench.js [--quick]   (from benches/js, after `npm ci`)
// Writes ../../target/flagbridge-bench/js.json (or $CARGO_TARGET_DIR/flagbridge-bench/js.json)
// and prints a summary. `report` (cargo run -p flagbridge-benches --bin report) turns it into
// ratios against flagbridge.
'use strict';

const fs = require('fs');
const path = require('path');
const sdk = require('@optimizely/optimizely-sdk');

const QUICK = process.argv.includes('--quick');
const WARMUP_MS = QUICK ? 200 : 1000;
const SAMPLES = QUICK ? 5 : 15;
const SAMPLE_MS = QUICK ? 40 : 150;

const benchesDir = path.resolve(__dirname, '..');
const repoRoot = path.resolve(benchesDir, '..');
const plan = JSON.parse(fs.readFileSync(path.join(benchesDir, 'cases.json'), 'utf8'));
const OPT = sdk.OptimizelyDecideOption;
// Cases (a)-(d) exclude variables (as the Rust benches do); (e) includes them.
const NO_EVENT = [OPT.DISABLE_DECISION_EVENT];
const NO_VARS = [OPT.DISABLE_DECISION_EVENT, OPT.EXCLUDE_VARIABLES];
const WITH_REASONS = [OPT.DISABLE_DECISION_EVENT, OPT.EXCLUDE_VARIABLES, OPT.INCLUDE_REASONS];

let sink = 0; // consumes results so the JIT cannot drop the calls
function consume(d) {
  sink ^= (d.enabled ? 1 : 2) ^ Object.keys(d.variables).length;
}

// Runs `op(i)` for warm-up, then SAMPLES batches of ~SAMPLE_MS each; returns ns per op.
function bench(op) {
  let i = 0;
  const warmEnd = Date.now() + WARMUP_MS;
  while (Date.now() < warmEnd) {
    for (let k = 0; k < 100; k++) op(i++);
  }
  // Size a batch to ~SAMPLE_MS.
  let batch = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < batch; k++) op(i++);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= SAMPLE_MS / 4) {
      batch = Math.max(1, Math.round((batch * SAMPLE_MS) / Math.max(ms, 0.001)));
      break;
    }
    batch *= 2;
  }
  const perOp = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < batch; k++) op(i++);
    perOp.push(Number(process.hrtime.bigint() - t0) / batch);
  }
  perOp.sort((a, b) => a - b);
  return { median_ns: perOp[Math.floor(perOp.length / 2)], min_ns: perOp[0], samples: SAMPLES, batch };
}

async function makeClient(datafile) {
  const client = sdk.createInstance({
    projectConfigManager: sdk.createStaticProjectConfigManager({ datafile }),
  });
  await client.onReady();
  return client;
}

function decisionSummary(d) {
  return { enabled: d.enabled, variation: d.variationKey, rule: d.ruleKey };
}

async function main() {
  const results = {};
  const decisions = {};
  for (const name of ['small', 'large']) {
    const entry = plan.datafiles[name];
    const datafile = fs.readFileSync(path.join(repoRoot, 'datafile-fixtures', entry.file), 'utf8');
    const flags = entry.flags;
    const client = await makeClient(datafile);
    const users = plan.users.map((u) => client.createUserContext(u.id, u.attributes || {}));
    const forcedUsers = plan.users.map((u) => {
      const ctx = client.createUserContext(u.id, u.attributes || {});
      const f = flags.forced;
      const context = f.rule ? { flagKey: f.flag, ruleKey: f.rule } : { flagKey: f.flag };
      ctx.setForcedDecision(context, { variationKey: f.variation });
      return ctx;
    });
    const n = users.length;
    const cases = {
      a_experiment: [users, flags.experiment, NO_VARS],
      b_no_rules: [users, flags.no_rules, NO_VARS],
      c_forced: [forcedUsers, flags.forced.flag, NO_VARS],
      d_reasons: [users, flags.reasons || flags.experiment, WITH_REASONS],
      e_variables: [users, flags.variables, NO_EVENT],
    };
    const flagKeys = new Set(JSON.parse(datafile).featureFlags.map((f) => f.key));
    for (const [label, [ctxs, flag, opts]] of Object.entries(cases)) {
      if (!flagKeys.has(flag)) {
        console.log(`decide/${label}/${name}: SKIPPED, flag ${flag} is not in ${entry.file}`);
        continue;
      }
      decisions[`${label}/${name}`] = ctxs.map((c) => decisionSummary(c.decide(flag, opts)));
      results[`decide/${label}/${name}`] = bench((i) => consume(ctxs[i % n].decide(flag, opts)));
      log(`decide/${label}/${name}`, results[`decide/${label}/${name}`]);
    }
    if (name === 'large') {
      const flagCount = JSON.parse(datafile).featureFlags.length;
      const r = bench((i) => {
        const all = users[i % n].decideAll(NO_EVENT);
        sink ^= Object.keys(all).length;
      });
      r.flags = flagCount;
      r.per_flag_ns = r.median_ns / flagCount;
      results['decide_all/large'] = r;
      log('decide_all/large', r);
    }
    client.close();

    // Client creation (datafile parse + config build), a few times after a warm-up.
    const times = [];
    for (let k = 0; k < (QUICK ? 3 : 12); k++) {
      const t0 = process.hrtime.bigint();
      const c = await makeClient(datafile);
      times.push(Number(process.hrtime.bigint() - t0));
      c.close();
    }
    times.splice(0, 2);
    times.sort((a, b) => a - b);
    results[`parse/${name}`] = {
      median_ns: times[Math.floor(times.length / 2)],
      min_ns: times[0],
      samples: times.length,
      bytes: Buffer.byteLength(datafile),
    };
    log(`parse/${name}`, results[`parse/${name}`]);
  }
  const out = {
    sdk: '@optimizely/optimizely-sdk',
    sdk_version: JSON.parse(
      fs.readFileSync(path.join(__dirname, 'node_modules/@optimizely/optimizely-sdk/package.json'), 'utf8'),
    ).version,
    node_version: process.version,
    date: new Date().toISOString(),
    quick: QUICK,
    results,
    decisions,
    sink,
  };
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  const outDir = path.join(targetDir, 'flagbridge-bench');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'js.json'), JSON.stringify(out, null, 2));
  console.log(`wrote ${path.join(outDir, 'js.json')}`);
}

function log(label, r) {
  const extra = r.per_flag_ns ? ` (${r.per_flag_ns.toFixed(1)} ns/flag over ${r.flags} flags)` : '';
  console.log(`${label.padEnd(28)} median ${fmt(r.median_ns)}  min ${fmt(r.min_ns)}${extra}`);
}

function fmt(ns) {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} us`;
  return `${ns.toFixed(1)} ns`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
