// usage: node js_decide.js datafile.json users.json > out.json
const fs = require('fs');
const sdk = require(process.env.OPTIMIZELY_SDK || '@optimizely/optimizely-sdk');
const datafile = fs.readFileSync(process.argv[2], 'utf8');
const users = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const events = [];
const dispatcher = { dispatchEvent: (e) => { events.push(e); return Promise.resolve({ statusCode: 200 }); } };
const client = sdk.createInstance({
  projectConfigManager: sdk.createStaticProjectConfigManager({ datafile }),
  eventProcessor: sdk.createForwardingEventProcessor(dispatcher),
});
client.onReady().then(() => {
  const out = [];
  for (const u of users) {
    const ctx = client.createUserContext(u.id, u.attributes || {});
    for (const fd of (u.forced || [])) ctx.setForcedDecision({ flagKey: fd[0], ruleKey: fd[1] === null ? undefined : fd[1] }, { variationKey: fd[2] });
    if (u.segments) ctx.qualifiedSegments = u.segments;
    const keys = u.keys;
    const opts = ['INCLUDE_REASONS'];
    const res = keys ? ctx.decideForKeys(keys, opts) : ctx.decideAll(opts);
    const decisions = [];
    for (const [k, d] of Object.entries(res)) {
      decisions.push({ flagKey: d.flagKey, enabled: d.enabled, variationKey: d.variationKey, ruleKey: d.ruleKey, variables: d.variables, reasons: d.reasons });
    }
    for (const t of (u.track || [])) ctx.trackEvent(t[0], t[1] || undefined);
    const evs = events.splice(0).map(e => e.params);
    out.push({ user: u, decisions, events: evs });
  }
  fs.writeSync(1, JSON.stringify(out) + "\n");
  process.exit(0);
});
