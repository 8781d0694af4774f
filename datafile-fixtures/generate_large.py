#!/usr/bin/env python3
"""Writes synthetic benchmark datafiles of a fixed shape (deterministic, seeded).

Each flag has:
  * one A/B experiment (Running, 3 variations, 90% traffic) behind a two-condition audience
    (`["and", exact string, gt number]`);
  * a 3-rule rollout: two targeted delivery rules (each behind a shared audience) + Everyone Else;
  * four variables (boolean, integer, double, string) with usages in most variations.
After them comes one flag with no rules at all (`flag_no_rules`: no experiment, no rollout), the
benchmarks' "decide a flag with no rules" case.

Every optional datafile field is present (featureEnabled, match, type, environmentKey, sdkKey,
botFiltering, anonymizeIP, sendFlagDecisions, typedAudiences, audienceConditions, events...),
because the crates.io `optimizely` crate's parser rejects datafiles lacking them; the revision is
numeric, condition values of numeric matches are non-negative integers, conditions always start
with an operator. Usage:

    python3 datafile-fixtures/generate_large.py                    # writes small.json + large_700.json
    python3 datafile-fixtures/generate_large.py --flags 1000 --out big.json [--seed 7]
"""
import argparse
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SEED = 20260101
N_ATTRIBUTES = 24
N_SHARED_AUDIENCES = 40
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "IT"]
PLANS = ["free", "basic", "pro", "enterprise"]


def attr_key(i):
    return f"attr_{i:02d}"


def build(n_flags, seed):
    rng = random.Random(seed)
    attributes = [{"id": str(30000 + i), "key": attr_key(i)} for i in range(N_ATTRIBUTES)]
    attributes += [{"id": "30100", "key": "country"}, {"id": "30101", "key": "plan"}, {"id": "30102", "key": "age"}]

    def leaf(name, match, value):
        return {"name": name, "type": "custom_attribute", "match": match, "value": value}

    audiences = []
    # Shared audiences for delivery rules: country or plan based.
    for i in range(N_SHARED_AUDIENCES):
        if i % 2 == 0:
            c = ["and", ["or", leaf("country", "exact", COUNTRIES[i % len(COUNTRIES)])]]
        else:
            c = ["and", ["or", leaf("plan", "exact", PLANS[i % len(PLANS)])], ["or", leaf("age", "ge", 18 + i % 30)]]
        audiences.append({"id": str(60000 + i), "name": f"shared_{i}", "conditions": c})

    experiments, rollouts, flags, events = [], [], [], []
    next_id = [100000]

    def nid():
        next_id[0] += 1
        return str(next_id[0])

    for f in range(n_flags):
        flag_key = f"flag_{f:04d}"
        var_ids = [nid() for _ in range(4)]
        variables = [
            {"id": var_ids[0], "key": "enabled_banner", "type": "boolean", "defaultValue": "false"},
            {"id": var_ids[1], "key": "max_items", "type": "integer", "defaultValue": str(rng.randint(1, 50))},
            {"id": var_ids[2], "key": "ratio", "type": "double", "defaultValue": f"{rng.random():.4f}"},
            {"id": var_ids[3], "key": "title", "type": "string", "defaultValue": f"title {f}"},
        ]

        def usages(k):
            return [{"id": var_ids[0], "value": "true" if k % 2 == 0 else "false"},
                    {"id": var_ids[1], "value": str(rng.randint(1, 500))},
                    {"id": var_ids[2], "value": f"{rng.random() * 10:.3f}"},
                    {"id": var_ids[3], "value": f"{flag_key} v{k}"}]

        # Experiment behind a two-condition audience.
        aud_id = str(61000 + f)
        audiences.append({"id": aud_id, "name": f"exp_audience_{f}", "conditions": [
            "and",
            leaf(attr_key(rng.randrange(N_ATTRIBUTES)), "exact", f"value_{rng.randrange(5)}"),
            leaf(attr_key(rng.randrange(N_ATTRIBUTES)), "gt", rng.randrange(100)),
        ]})
        exp_id, layer_id = nid(), nid()
        variations = [{"id": nid(), "key": f"variation_{k}", "featureEnabled": k != 0, "variables": usages(k)}
                      for k in range(3)]
        ends = [3000, 6000, 9000]
        experiments.append({
            "id": exp_id, "key": f"{flag_key}_experiment", "layerId": layer_id, "status": "Running",
            "variations": variations,
            "trafficAllocation": [{"entityId": v["id"], "endOfRange": e} for v, e in zip(variations, ends)],
            "audienceIds": [aud_id], "audienceConditions": ["or", aud_id], "forcedVariations": {},
        })

        # 3-rule rollout.
        rollout_id = nid()
        rules = []
        for r in range(3):
            rule_id = nid()
            everyone_else = r == 2
            aud = [] if everyone_else else [str(60000 + rng.randrange(N_SHARED_AUDIENCES))]
            rv = {"id": nid(), "key": f"{flag_key}_rule_{r}_on", "featureEnabled": True, "variables": usages(10 + r)}
            end = 10000 if everyone_else else rng.choice([2500, 5000, 10000])
            rules.append({
                "id": rule_id, "key": "everyone_else" if everyone_else else f"{flag_key}_rule_{r}",
                "layerId": nid(), "status": "Running", "variations": [rv],
                "trafficAllocation": [{"entityId": rv["id"], "endOfRange": end}],
                "audienceIds": aud, "audienceConditions": (["or"] + aud) if aud else [], "forcedVariations": {},
            })
        rollouts.append({"id": rollout_id, "experiments": rules})
        flags.append({"id": nid(), "key": flag_key, "experimentIds": [exp_id], "rolloutId": rollout_id,
                      "variables": variables})
        if f % 10 == 0:
            events.append({"id": nid(), "key": f"event_{f // 10:03d}", "experimentIds": [exp_id]})

    # Last, so the seeded flags above are unchanged: a flag with no experiment and no rollout.
    flags.append({"id": nid(), "key": "flag_no_rules", "experimentIds": [], "rolloutId": "", "variables": []})

    return {
        "version": "4",
        "accountId": "10000001",
        "projectId": "20000002",
        "revision": "17",
        "environmentKey": "production",
        "sdkKey": f"bench{n_flags}SdkKey",
        "botFiltering": False,
        "anonymizeIP": True,
        "sendFlagDecisions": True,
        "region": "US",
        "attributes": attributes,
        "audiences": [{"id": "$opt_dummy_audience", "name": "Optimizely-Generated Audience for Backwards Compatibility",
                       "conditions": "[\"or\", {\"match\": \"exact\", \"name\": \"$opt_dummy_attribute\", "
                                     "\"type\": \"custom_attribute\", \"value\": \"impossible_value\"}]"}],
        "typedAudiences": audiences,
        "events": events,
        "experiments": experiments,
        "groups": [],
        "featureFlags": flags,
        "rollouts": rollouts,
        "integrations": [],
        "holdouts": [],
        "variables": [],
    }


def write(n_flags, seed, path, indent):
    data = build(n_flags, seed)
    with open(path, "w", encoding="utf-8") as f:
        if indent:
            json.dump(data, f, indent=2)
        else:
            json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {n_flags} flags, {os.path.getsize(path)} bytes")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--flags", type=int, help="number of flags (default: write small.json and large_700.json)")
    p.add_argument("--out", help="output path (with --flags)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    a = p.parse_args()
    if a.flags is not None:
        write(a.flags, a.seed, a.out or os.path.join(HERE, f"large_{a.flags}.json"), indent=False)
    else:
        write(7, a.seed, os.path.join(HERE, "small.json"), indent=True)
        write(700, a.seed, os.path.join(HERE, "large_700.json"), indent=False)


if __name__ == "__main__":
    main()
