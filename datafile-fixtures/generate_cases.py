#!/usr/bin/env python3
"""Writes the JSONL decide/track cases for every datafile (deterministic, seeded per file).

    python3 datafile-fixtures/generate_cases.py [--shared-dir ../shared/datafiles] [--more-dir ../shared/datafiles-more]

Reads each datafile of this folder (writes `cases/<name>.jsonl`) and, when the shared SDK
datafiles are present, each of them (writes `shared-cases/<name>.jsonl`; the datafiles
themselves are never copied here); likewise `../shared/datafiles-more` -> `more-cases/`. Attribute values are derived from the datafile's audience
conditions (hits, near misses, wrong types) plus junk of every JSON scalar type, so the cases
reach every audience branch. See README.md for the case format.
"""
import argparse
import json
import os
import random
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONS = ["DISABLE_DECISION_EVENT", "ENABLED_FLAGS_ONLY", "IGNORE_USER_PROFILE_SERVICE",
           "INCLUDE_REASONS", "EXCLUDE_VARIABLES"]
JUNK = [None, True, False, 0, -1, 7, 2.5, -0.5, 1.0, "", "x", "true", "10", "1.2.3",
        9007199254740992, 9007199254740994, -9007199254740992, 1e300, "h\u00e9llo"]
SPECIAL_USERS = ["", "alice", "bob", "carol", "user with space", "\u30e6\u30fc\u30b6\u30fc", "\U0001F600",
                 "test_user", "user_1"]
# Case count per datafile; big datafiles get fewer cases and rarer decide_all.
DEFAULT_CASES = 320


def leaves(node, out):
    if isinstance(node, list):
        for n in node:
            leaves(n, out)
    elif isinstance(node, dict):
        out.append(node)


def conditions_of(df):
    out = []
    for a in df.get("audiences", []):
        c = a.get("conditions")
        if isinstance(c, str):
            try:
                c = json.loads(c)
            except ValueError:
                continue
        leaves(c, out)
    for a in df.get("typedAudiences", []):
        leaves(a.get("conditions"), out)
    return out


def candidates_for(match, value):
    """Values near a condition value: hits, misses and wrong types."""
    if match in ("semver_eq", "semver_lt", "semver_le", "semver_gt", "semver_ge") and isinstance(value, str):
        return [value, "1.2.3", "2.1", "2.1.0", "2.1.3", "2.1.3-beta", "2", "2.0.1", "3.0.0", "3.0.0-alpha",
                "3.0.0-beta", "3.0.0-beta+x", "1.2.3+build.7", "1.2.3+build.8", "10.0", "2.1.2.1", "2..1",
                " 2.1", "", 2.1, value + ".1"]
    if isinstance(value, bool):
        return [value, not value, str(value).lower(), 1]
    if isinstance(value, (int, float)):
        v = value if abs(value) < 1e15 else 2 ** 53
        return [v, v + 1, v - 1, v + 0.5, v - 0.25, str(v), True, float(v), 0]
    if isinstance(value, str):
        base = [value, value + "x", value.upper(), "", "pre" + value + "post", value[:-1] if value else "z"]
        if match == "substring":
            base += ["xx" + value, value[1:]]
        return base
    return ["anything", 1, True]


def analyze(df):
    attrs = {}
    for c in conditions_of(df):
        name = c.get("name")
        if not isinstance(name, str):
            continue
        attrs.setdefault(name, [])
        attrs[name] += candidates_for(c.get("match"), c.get("value"))
    for a in df.get("attributes", []):
        attrs.setdefault(a["key"], ["v1", 3, True])
    attrs.setdefault("unlisted_attr", ["not in datafile", 5])
    attrs.setdefault("$opt_custom", ["opt value", 12])
    # `flag_no_rules` was appended to the benchmark datafiles after their cases were drawn; it is
    # left out of the draws so the committed cases regenerate byte for byte (decideAll reaches it).
    flags = [f["key"] for f in df.get("featureFlags", []) if f["key"] != "flag_no_rules"]
    exp_by_id = {e["id"]: e for e in df.get("experiments", [])}
    for g in df.get("groups", []):
        for e in g.get("experiments", []):
            exp_by_id[e["id"]] = e
    rollouts = {r["id"]: r for r in df.get("rollouts", [])}
    rules, variations = {}, {}
    for f in df.get("featureFlags", []):
        rs = [exp_by_id[i] for i in f.get("experimentIds", []) if i in exp_by_id]
        rs += rollouts.get(f.get("rolloutId"), {}).get("experiments", [])
        rules[f["key"]] = [r["key"] for r in rs]
        variations[f["key"]] = sorted({v["key"] for r in rs for v in r.get("variations", [])})
    forced_users = sorted({u for e in exp_by_id.values() for u in e.get("forcedVariations", {})})
    events = [e["key"] for e in df.get("events", [])]
    experiments = sorted((e["id"], [v["id"] for v in e.get("variations", [])]) for e in exp_by_id.values())
    return attrs, flags, rules, variations, forced_users, events, experiments


def make_tags(rng):
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.25:
        return {}
    tags = {}
    if rng.random() < 0.7:
        tags["revenue"] = rng.choice([100, 0, -5, 10.7, "42", "4.2e1", " 7", "abc", True, False, None, 2 ** 53, 1e20])
    if rng.random() < 0.6:
        tags["value"] = rng.choice([1.5, 2, 0, "3.25", "x", True, False, None, -0.75, "1e3"])
    if rng.random() < 0.5:
        tags["category"] = rng.choice(["shoes", "", "h\u00e9"])
    if rng.random() < 0.3:
        tags["nested"] = {"a": 1, "b": [1, "two", None]}
    if rng.random() < 0.2:
        tags["count"] = rng.choice([3, 3.5, None])
    return tags


def make_case(rng, i, info, decide_all_p):
    attrs, flags, rules, variations, forced_users, events, _ = info
    roll = rng.random()
    if roll < 0.25:
        user = rng.choice(SPECIAL_USERS + forced_users)
    else:
        user = f"user_{rng.randrange(100000)}"
    attributes = {}
    for name, cands in attrs.items():
        if rng.random() < 0.55:
            attributes[name] = rng.choice(cands) if rng.random() < 0.85 else rng.choice(JUNK)
    if rng.random() < 0.1:
        attributes["$opt_bucketing_id"] = rng.choice(["bucket_1", "bucket_2", "", f"b{rng.randrange(1000)}",
                                                      123, True, None, 4.5])
    if rng.random() < 0.03:
        attributes["$opt_user_agent"] = rng.choice(["Googlebot/2.1", "Mozilla/5.0"])
    if rng.random() < 0.08:
        # Track case.
        ev = rng.choice(events) if events and rng.random() < 0.9 else "no_such_event"
        case = {"type": "track", "user_id": user, "attributes": attributes, "event_key": ev}
        tags = make_tags(rng)
        if tags is not None:
            case["tags"] = tags
        return case
    roll = rng.random()
    if not flags or roll < decide_all_p:
        keys = None
    elif roll < 0.65:
        keys = [rng.choice(flags) if rng.random() < 0.95 else "no_such_flag"]
    else:
        keys = rng.sample(flags, min(len(flags), rng.randint(2, 4)))
        if rng.random() < 0.15:
            keys.insert(rng.randrange(len(keys) + 1), "unknown_flag_key")
    options = [o for o in OPTIONS if rng.random() < (0.3 if o == "INCLUDE_REASONS" else 0.12)]
    if rng.random() < 0.02:
        options.append("NOT_AN_OPTION")
    forced = []
    if flags and rng.random() < 0.15:
        for _ in range(rng.randint(1, 2)):
            fk = rng.choice(keys) if keys and rng.random() < 0.8 else rng.choice(flags)
            if fk not in variations:
                fk = rng.choice(flags)
            r = rng.random()
            rule = None if r < 0.45 else (rng.choice(rules[fk]) if rules[fk] and r < 0.9 else "no_such_rule")
            vs = variations[fk]
            v = rng.choice(vs) if vs and rng.random() < 0.8 else rng.choice(["bogus_variation", "on", "off"])
            forced.append({"flag": fk, "rule": rule, "variation": v})
    case = {"user_id": user, "attributes": attributes, "flags": keys, "options": options}
    if forced:
        case["forced"] = forced
    if rng.random() < 0.1:
        case["segments"] = rng.choice([[], ["seg_gold"], ["seg_silver", "seg_gold"], ["other"]])
    if rng.random() < 0.03:
        del case["attributes"]
    return case


MALFORMED = [
    "this is not json",
    '{"user_id": 42, "flags": null}',
    '{"flags": ["a"]}',
    '[1, 2, 3]',
    '{"user_id": "u", "attributes": [1], "flags": null}',
    '{"user_id": "u", "flags": "not-a-list"}',
    '{"user_id": "u", "flags": null, "options": "INCLUDE_REASONS"}',
    '{"type": "track", "user_id": "u"}',
    '{"user_id": "u", "flags": null, "forced": [{"flag": 3, "variation": "v"}]}',
    '{"user_id": "u", "flags": ["f_ab"], "forced": [{"flag": "f_ab", "rule": 5, "variation": "on"}]}',
    '{"user_id": "u", "type": null, "flags": null}',
    '{"user_id": "u", "type": "decide", "flags": null}',
    '{"type": "track", "user_id": "u", "event_key": "purchase", "tags": []}',
    '{"type": "track", "user_id": "u", "event_key": 7}',
    # Edge shapes that are valid:
    '{"user_id": "u", "flags": []}',
    '{"user_id": "u", "attributes": null, "flags": ["f_ab"], "options": null, "forced": null, "segments": null}',
    '{"type": "track", "user_id": "u", "event_key": "purchase", "tags": null}',
    '{"type": "track", "user_id": "u", "event_key": "purchase", "tags": {}}',
    '{"type": "track", "user_id": "", "event_key": "signup", "attributes": {"country": "US"}, "tags": {"revenue": "12abc", "value": " 3.5xyz"}}',
    '{"user_id": "alice", "flags": ["f_whitelist", "f_ab"], "options": ["ENABLED_FLAGS_ONLY", "INCLUDE_REASONS"], "forced": [{"flag": "f_ab", "rule": null, "variation": "control"}, {"flag": "f_ab", "rule": null, "variation": "treatment"}]}',
    '{"user_id": "u", "flags": ["f_ab"], "forced": [{"flag": "f_ab", "rule": "ab_running", "variation": "treatment"}, {"flag": "f_ab", "variation": "control"}]}',
]


def bucket_map(rng, experiments):
    """A `$opt_experiment_bucket_map` attribute (JS sticky bucketing from attributes): entries
    naming the experiment's own variation, another experiment's, an unknown id, or junk."""
    m = {}
    all_vids = [v for _, vs in experiments for v in vs]
    for _ in range(rng.randint(1, 3)):
        eid, vids = rng.choice(experiments)
        r = rng.random()
        if r < 0.5 and vids:
            m[eid] = {"variation_id": rng.choice(vids)}
        elif r < 0.7 and all_vids:
            m[eid] = {"variation_id": rng.choice(all_vids)}
        elif r < 0.85:
            m[eid] = {"variation_id": "999999999"}
        else:
            m[eid] = rng.choice([{}, "junk", {"variation_id": None}])
    return m


def add_bucket_maps(name, lines, info):
    """Adds the attribute to about 6% of the decide cases, from a separate random stream so the
    other cases stay as drawn. Not for the benchmark datafiles."""
    experiments = info[6]
    if not experiments or name in ("small", "large_700"):
        return lines
    rng = random.Random(zlib.crc32((name + "/bucket_map").encode()))
    out = []
    for line in lines:
        if rng.random() < 0.06:
            try:
                c = json.loads(line)
            except ValueError:
                c = None
            if isinstance(c, dict) and "type" not in c and isinstance(c.get("attributes"), dict):
                c["attributes"]["$opt_experiment_bucket_map"] = bucket_map(rng, experiments)
                line = json.dumps(c, ensure_ascii=False)
        out.append(line)
    return out


def write_cases(df_path, out_path, n_cases, decide_all_p, malformed=False):
    with open(df_path, encoding="utf-8-sig") as f:
        df = json.load(f)
    name = os.path.splitext(os.path.basename(df_path))[0]
    rng = random.Random(zlib.crc32(name.encode()))
    info = analyze(df)
    lines = []
    if not info[1]:  # no flags (v2): mostly track cases
        for i in range(n_cases):
            c = make_case(rng, i, info, 1.0)
            if rng.random() < 0.6 and info[5]:
                c = {"type": "track", "user_id": c["user_id"], "attributes": c.get("attributes", {}),
                     "event_key": rng.choice(info[5] + ["no_such_event"])}
                tags = make_tags(rng)
                if tags is not None:
                    c["tags"] = tags
            lines.append(json.dumps(c, ensure_ascii=False))
    else:
        for i in range(n_cases):
            lines.append(json.dumps(make_case(rng, i, info, decide_all_p), ensure_ascii=False))
    lines = add_bucket_maps(name, lines, info)
    if malformed:
        for k, m in enumerate(MALFORMED):
            lines.insert(3 + 7 * k, m)
        lines.insert(10, "")  # blank lines are skipped and not counted
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out_path}: {sum(1 for x in lines if x.strip())} cases")


PLAN = {  # name -> (cases, probability of decide_all)
    "large_700": (60, 0.03),
    "small": (200, 0.15),
    "audiences": (400, 0.08),
}
SHARED_PLAN = {"go_100_entities": (150, 0.03)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shared-dir", help="default: ../shared/datafiles next to the repo (or one level up)")
    p.add_argument("--more-dir", help="default: ../shared/datafiles-more next to the repo (or one level up)")
    a = p.parse_args()

    def default_dir(name):
        tries = [os.path.join(HERE, "..", "..", "shared", name),
                 os.path.join(HERE, "..", "..", "..", "shared", name)]
        return next((t for t in tries if os.path.isdir(t)), tries[0])

    if a.shared_dir is None:
        a.shared_dir = default_dir("datafiles")
    if a.more_dir is None:
        a.more_dir = default_dir("datafiles-more")
    for fn in sorted(os.listdir(HERE)):
        if fn.endswith(".json"):
            name = fn[:-5]
            n, pall = PLAN.get(name, (DEFAULT_CASES, 0.15))
            write_cases(os.path.join(HERE, fn), os.path.join(HERE, "cases", name + ".jsonl"), n, pall,
                        malformed=(name == "experiments"))
    for src, out in ((a.shared_dir, "shared-cases"), (a.more_dir, "more-cases")):
        if os.path.isdir(src):
            os.makedirs(os.path.join(HERE, out), exist_ok=True)
            for fn in sorted(os.listdir(src)):
                if fn.endswith(".json"):
                    name = fn[:-5]
                    n, pall = SHARED_PLAN.get(name, (DEFAULT_CASES, 0.15))
                    write_cases(os.path.join(src, fn), os.path.join(HERE, out, name + ".jsonl"), n, pall)
        else:
            print(f"shared datafiles not found at {src}: skipping {out}")

if __name__ == "__main__":
    main()
