// Golden decisions from the official Optimizely JavaScript SDK (offline).
//
//   cd datafile-fixtures/golden && npm ci && node generate.mjs [--shared-dir DIR] [--more-dir DIR] [name ...]
//
// For every datafile `datafile-fixtures/<name>.json` with cases `datafile-fixtures/cases/<name>.jsonl`
// writes `datafile-fixtures/golden/<name>.jsonl`; for every shared SDK datafile
// `<shared-dir>/<name>.json` with `datafile-fixtures/shared-cases/<name>.jsonl` writes
// `datafile-fixtures/shared-golden/<name>.jsonl`; likewise `--more-dir` (default
// `../shared/datafiles-more`) with `more-cases/` -> `more-golden/`. Events are recorded by a dispatcher that never
// sends anything. The output format is described in datafile-fixtures/README.md.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createInstance,
  createStaticProjectConfigManager,
  createForwardingEventProcessor,
  NOTIFICATION_TYPES,
} from '@optimizely/optimizely-sdk';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.dirname(HERE);
const SDK_VERSION = JSON.parse(fs.readFileSync(
  path.join(HERE, 'node_modules', '@optimizely', 'optimizely-sdk', 'package.json'), 'utf8')).version;
const OPTIONS = new Set([
  'DISABLE_DECISION_EVENT', 'ENABLED_FLAGS_ONLY', 'IGNORE_USER_PROFILE_SERVICE', 'INCLUDE_REASONS',
  'EXCLUDE_VARIABLES',
]);

function dropNulls(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== null && v !== undefined) out[k] = v;
  }
  return out;
}

function visitorPart(batch, visitor) {
  const attributes = (visitor.attributes || []).map(dropNulls);
  attributes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    visitor_id: visitor.visitor_id,
    attributes,
    batch: {
      account_id: batch.account_id,
      project_id: batch.project_id,
      revision: batch.revision,
      anonymize_ip: batch.anonymize_ip,
      enrich_decisions: batch.enrich_decisions,
    },
  };
}

// Every (visitor, snapshot) of a dispatched batch as impressions / conversions.
function flatten(batch) {
  const impressions = [];
  const conversions = [];
  for (const visitor of batch.visitors) {
    for (const snap of visitor.snapshots) {
      const events = snap.events.map(({ timestamp, uuid, ...rest }) => dropNulls(rest));
      if (snap.decisions && snap.decisions.length > 0) {
        for (const d of snap.decisions) {
          const md = d.metadata || {};
          impressions.push({
            campaign_id: d.campaign_id ?? null,
            experiment_id: d.experiment_id ?? null,
            variation_id: d.variation_id ?? null,
            metadata: {
              flag_key: md.flag_key,
              rule_key: md.rule_key ?? null,
              rule_type: md.rule_type,
              variation_key: md.variation_key ?? null,
              enabled: md.enabled,
              ...(md.cmab_uuid !== undefined ? { cmab_uuid: md.cmab_uuid } : {}),
            },
            events,
            ...visitorPart(batch, visitor),
          });
        }
      } else {
        conversions.push({ events, ...visitorPart(batch, visitor) });
      }
    }
  }
  return { impressions, conversions };
}

function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringList(v) {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

// The case validation the flagbridge CLI mirrors; returns an error string or null.
function validate(c) {
  if (!isObject(c)) return 'case is not a JSON object';
  if (typeof c.user_id !== 'string') return 'user_id must be a string';
  if (c.attributes !== undefined && c.attributes !== null && !isObject(c.attributes)) {
    return 'attributes must be an object';
  }
  if (c.type === 'track') {
    if (typeof c.event_key !== 'string') return 'event_key must be a string';
    if (c.tags !== undefined && c.tags !== null && !isObject(c.tags)) return 'tags must be an object';
    return null;
  }
  if (c.type !== undefined) return 'unknown case type';
  if (c.flags !== undefined && c.flags !== null && !isStringList(c.flags)) {
    return 'flags must be null or a list of strings';
  }
  if (c.options !== undefined && c.options !== null && !isStringList(c.options)) {
    return 'options must be a list of strings';
  }
  if (c.segments !== undefined && c.segments !== null && !isStringList(c.segments)) {
    return 'segments must be a list of strings';
  }
  if (c.forced !== undefined && c.forced !== null) {
    if (!Array.isArray(c.forced)) return 'forced must be a list';
    for (const f of c.forced) {
      if (!isObject(f) || typeof f.flag !== 'string' || typeof f.variation !== 'string'
        || !(f.rule === undefined || f.rule === null || typeof f.rule === 'string')) {
        return 'forced entries need flag (string), rule (string or null), variation (string)';
      }
    }
  }
  return null;
}

async function runFile(datafilePath, casesPath, outPath, notesPath) {
  const datafile = fs.readFileSync(datafilePath, 'utf8').replace(/^\uFEFF/, '');
  const dispatched = [];
  const dispatcher = {
    dispatchEvent(logEvent) {
      dispatched.push(logEvent);
      return Promise.resolve({ statusCode: 200 });
    },
  };
  const client = createInstance({
    projectConfigManager: createStaticProjectConfigManager({ datafile }),
    eventProcessor: createForwardingEventProcessor(dispatcher),
  });
  await client.onReady();
  // DECISION notifications (type "flag"), recorded per case: golden-notifications/<name>.jsonl.
  const notes = [];
  const noteLines = [];
  client.notificationCenter.addNotificationListener(NOTIFICATION_TYPES.DECISION, (n) => notes.push(n));
  // decideAll evaluates the flags in datafile order (lines are matched by case and flag key anyway).
  const flagOrder = [...new Set((JSON.parse(datafile).featureFlags ?? []).map((f) => f.key))];

  const out = [];
  const lines = fs.readFileSync(casesPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
  lines.forEach((line, n) => {
    let c;
    try {
      c = JSON.parse(line);
    } catch (e) {
      out.push({ case: n, error: `invalid JSON: ${e.message}` });
      return;
    }
    const err = validate(c);
    if (err) {
      out.push({ case: n, error: err });
      return;
    }
    dispatched.length = 0;
    notes.length = 0;
    const user = client.createUserContext(c.user_id, c.attributes ?? {});
    if (c.type === 'track') {
      user.trackEvent(c.event_key, c.tags ?? undefined);
      const conversions = dispatched.flatMap((b) => flatten(b.params).conversions);
      out.push({ case: n, type: 'track', user_id: c.user_id, event_key: c.event_key, conversions });
      return;
    }
    if (c.segments) user.qualifiedSegments = c.segments;
    for (const f of c.forced ?? []) {
      user.setForcedDecision({ flagKey: f.flag, ruleKey: f.rule ?? undefined }, { variationKey: f.variation });
    }
    const options = c.options ?? [];
    let keys;
    let result;
    if (c.flags === null || c.flags === undefined) {
      result = user.decideAll(options);
      keys = [...new Set([...flagOrder, ...Object.keys(result)])];
    } else if (c.flags.length === 1) {
      keys = c.flags;
      result = { [c.flags[0]]: user.decide(c.flags[0], options) };
    } else {
      keys = c.flags;
      result = user.decideForKeys(c.flags, options);
    }
    const impressions = dispatched.flatMap((b) => flatten(b.params).impressions);
    const byFlag = new Map();
    for (const imp of impressions) {
      const list = byFlag.get(imp.metadata.flag_key) ?? [];
      list.push(imp);
      byFlag.set(imp.metadata.flag_key, list);
    }
    for (const key of keys) {
      const d = result[key];
      const imps = byFlag.get(key) ?? [];
      byFlag.delete(key);
      if (d) {
        out.push({
          case: n,
          user_id: c.user_id,
          flag_key: key,
          enabled: d.enabled,
          variation_key: d.variationKey ?? null,
          rule_key: d.ruleKey ?? null,
          variables: d.variables ?? {},
          reasons: d.reasons ?? [],
          impressions: imps,
        });
      } else if (imps.length > 0) {
        out.push({ case: n, user_id: c.user_id, flag_key: key, omitted_from_result: true, impressions: imps });
      }
    }
    if (byFlag.size > 0) {
      throw new Error(`case ${n} of ${casesPath}: impressions for flags outside the result: ${[...byFlag.keys()]}`);
    }
    const unknownOptions = options.filter((o) => !OPTIONS.has(o));
    void unknownOptions; // the SDK ignores them (with a warning); so does flagbridge
    for (const note of notes) {
      // variables and reasons are left out (the decision lines carry them).
      const { variables, reasons, ...info } = note.decisionInfo;
      noteLines.push({ case: n, type: note.type, user_id: note.userId, ...info });
    }
  });
  await client.close();
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  fs.writeFileSync(outPath, out.map((o) => JSON.stringify(o)).join('\n') + '\n');
  fs.mkdirSync(path.dirname(notesPath), { recursive: true });
  fs.writeFileSync(notesPath, noteLines.map((o) => JSON.stringify(o)).join('\n') + '\n');
  console.log(`wrote ${path.relative(FIXTURES, outPath)}: ${lines.length} cases, ${out.length} lines`);
}

// Whether the SDK loads each datafile of acceptance/ (onReady resolves) and then decides every
// flag for one user without throwing.
async function runAcceptance(dir, outPath) {
  const out = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
    const datafile = fs.readFileSync(path.join(dir, f), 'utf8');
    const row = { file: f, loads: false, decides: null };
    let client = null;
    try {
      client = createInstance({
        projectConfigManager: createStaticProjectConfigManager({ datafile }),
        eventProcessor: createForwardingEventProcessor({ dispatchEvent: () => Promise.resolve({}) }),
      });
      await client.onReady({ timeout: 2000 });
      row.loads = true;
    } catch (e) {
      row.error = String(e && e.message ? e.message : e);
    }
    if (row.loads) {
      try {
        client.createUserContext('acceptance_user', {}).decideAll();
        row.decides = true;
      } catch (e) {
        row.decides = false;
        row.error = String(e && e.message ? e.message : e);
      }
    }
    // close() of a client that failed to start never settles; only await it for loaded ones.
    if (row.loads) await client.close();
    else if (client) client.close().catch(() => {});
    out.push(row);
  }
  fs.writeFileSync(outPath, out.map((o) => JSON.stringify(o)).join('\n') + '\n');
  console.log(`wrote ${path.relative(FIXTURES, outPath)}: ${out.length} datafiles`);
}

async function main() {
  const args = process.argv.slice(2);
  let sharedDir = null;
  let moreDir = null;
  const only = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--shared-dir') sharedDir = args[++i];
    else if (args[i] === '--more-dir') moreDir = args[++i];
    else only.push(args[i]);
  }
  const defaultDir = (name) => {
    const tries = [path.join(FIXTURES, '..', '..', 'shared', name),
      path.join(FIXTURES, '..', '..', '..', 'shared', name)];
    return tries.find((t) => fs.existsSync(t)) ?? tries[0];
  };
  sharedDir ??= defaultDir('datafiles');
  moreDir ??= defaultDir('datafiles-more');
  const wanted = (name) => only.length === 0 || only.includes(name);
  console.log(`@optimizely/optimizely-sdk ${SDK_VERSION}`);
  for (const f of fs.readdirSync(path.join(FIXTURES, 'cases')).sort()) {
    const name = f.replace(/\.jsonl$/, '');
    if (!wanted(name)) continue;
    await runFile(path.join(FIXTURES, `${name}.json`), path.join(FIXTURES, 'cases', f),
      path.join(HERE, `${name}.jsonl`), path.join(FIXTURES, 'golden-notifications', `${name}.jsonl`));
  }
  if (wanted('acceptance')) {
    await runAcceptance(path.join(FIXTURES, 'acceptance'), path.join(HERE, 'acceptance.jsonl'));
  }
  for (const [dir, prefix] of [[sharedDir, 'shared'], [moreDir, 'more']]) {
    if (!fs.existsSync(dir)) {
      console.log(`shared datafiles not found at ${dir}: skipping ${prefix} goldens`);
      continue;
    }
    for (const f of fs.readdirSync(path.join(FIXTURES, `${prefix}-cases`)).sort()) {
      const name = f.replace(/\.jsonl$/, '');
      if (!wanted(name)) continue;
      for (const d of [`${prefix}-golden`, `${prefix}-golden-notifications`]) {
        fs.mkdirSync(path.join(FIXTURES, d), { recursive: true });
      }
      await runFile(path.join(dir, `${name}.json`), path.join(FIXTURES, `${prefix}-cases`, f),
        path.join(FIXTURES, `${prefix}-golden`, `${name}.jsonl`),
        path.join(FIXTURES, `${prefix}-golden-notifications`, `${name}.jsonl`));
    }
  }
}

await main();
