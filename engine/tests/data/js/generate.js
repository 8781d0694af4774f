// Regenerates the goldens of engine/tests/js_golden.rs from the official JavaScript SDK, pinned
// by package.json + package-lock.json (@optimizely/optimizely-sdk 6.6.1):
//
//   cd engine/tests/data/js && npm ci && node generate.js
//
// Reads ../edge.json (the datafile) and edge_users.json (the users); writes
// - edge_golden.json: per user, its decisions (flag, enabled, variation, rule, variables and
//   reasons, with INCLUDE_REASONS) and the events the SDK dispatched for them (impressions, then
//   conversions of the user's `track` calls), without the random `uuid` and `timestamp`;
// - edge_optimizely_config.json: getOptimizelyConfig() without its `datafile` field.
// Offline: a static config manager and a forwarding event processor whose dispatcher records.
const fs = require('fs');
const path = require('path');
const sdk = require(process.env.OPTIMIZELY_SDK || '@optimizely/optimizely-sdk');

const here = __dirname;
const datafile = fs.readFileSync(path.join(here, '..', 'edge.json'), 'utf8');
const users = JSON.parse(fs.readFileSync(path.join(here, 'edge_users.json'), 'utf8'));

function stripEvent(params) {
  for (const visitor of params.visitors) {
    for (const snapshot of visitor.snapshots) {
      for (const event of snapshot.events) {
        delete event.uuid;
        delete event.timestamp;
      }
    }
  }
  return params;
}

async function main() {
  const events = [];
  const dispatcher = { dispatchEvent: (e) => { events.push(e); return Promise.resolve({ statusCode: 200 }); } };
  const client = sdk.createInstance({
    projectConfigManager: sdk.createStaticProjectConfigManager({ datafile }),
    eventProcessor: sdk.createForwardingEventProcessor(dispatcher),
  });
  await client.onReady();
  const out = [];
  for (const u of users) {
    const ctx = client.createUserContext(u.id, u.attributes || {});
    for (const fd of (u.forced || [])) {
      ctx.setForcedDecision({ flagKey: fd[0], ruleKey: fd[1] === null ? undefined : fd[1] }, { variationKey: fd[2] });
    }
    if (u.segments) ctx.qualifiedSegments = u.segments;
    const opts = ['INCLUDE_REASONS'];
    const res = u.keys ? ctx.decideForKeys(u.keys, opts) : ctx.decideAll(opts);
    const decisions = Object.values(res).map((d) => ({
      flagKey: d.flagKey, enabled: d.enabled, variationKey: d.variationKey, ruleKey: d.ruleKey,
      variables: d.variables, reasons: d.reasons,
    }));
    for (const t of (u.track || [])) ctx.trackEvent(t[0], t[1] || undefined);
    out.push({ user: u, decisions, events: events.splice(0).map((e) => stripEvent(e.params)) });
  }
  fs.writeFileSync(path.join(here, 'edge_golden.json'), JSON.stringify(out) + '\n');

  const config = client.getOptimizelyConfig();
  const { datafile: _omitted, ...rest } = JSON.parse(JSON.stringify(config));
  fs.writeFileSync(path.join(here, 'edge_optimizely_config.json'), JSON.stringify(rest));
  const decided = out.reduce((n, u) => n + u.decisions.length, 0);
  const dispatched = out.reduce((n, u) => n + u.events.length, 0);
  const version = JSON.parse(fs.readFileSync(
    path.join(here, 'node_modules', '@optimizely', 'optimizely-sdk', 'package.json'), 'utf8')).version;
  console.log(`SDK ${version}: ${out.length} users, ${decided} decisions, ${dispatched} events`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
