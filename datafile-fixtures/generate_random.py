#!/usr/bin/env python3
"""Writes seeded random datafiles (`random_1.json` ... `random_5.json`) that mix every feature at
once: random condition trees over every match type, experiments of every status with traffic
holes and stray entity ids, random and overlapping groups, rollouts of 1-4 rules, global and
local holdouts, "fr" and cmab experiments, whitelisting, variables of every type.

    python3 datafile-fixtures/generate_random.py [--count 5]

Deterministic (one seed per file). Cases and goldens for them come from generate_cases.py and
golden/generate.mjs like every other datafile here.
"""
import argparse
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ATTRS = [("s1", "str"), ("s2", "str"), ("n1", "num"), ("n2", "num"), ("b1", "bool"), ("v1", "semver")]
STATUSES = ["Running"] * 6 + ["Paused", "Launched", "Not started", "Archived"]
VAR_TYPES = [("boolean", None, ["true", "false", "True"]), ("integer", None, ["1", "-7", "42", "3.9"]),
             ("double", None, ["0.5", "2", "-1e2"]), ("string", None, ["a", "", "x y"]),
             ("json", None, ['{"k": 1}', "[1, 2]", '"s"']), ("string", "json", ['{"j": true}', "{}"])]


def leaf(rng):
    name, kind = rng.choice(ATTRS)
    if rng.random() < 0.04:
        return {"name": name, "type": "custom_attribute", "match": "bogus_match", "value": "x"}
    if rng.random() < 0.04:
        return {"name": "seg", "type": "third_party_dimension", "match": "qualified",
                "value": rng.choice(["seg_gold", "seg_silver"])}
    if kind == "str":
        m = rng.choice(["exact", "substring", "exists", None])
        v = rng.choice(["alpha", "beta", "lph", "US", ""])
    elif kind == "num":
        m = rng.choice(["exact", "gt", "ge", "lt", "le", "exists"])
        v = rng.choice([0, 10, 42, 18.5, -3, 100])
    elif kind == "bool":
        m = rng.choice(["exact", "exists"])
        v = rng.choice([True, False])
    else:
        m = rng.choice(["semver_eq", "semver_lt", "semver_le", "semver_gt", "semver_ge"])
        v = rng.choice(["2.1", "2.1.3", "3.0.0-beta", "1.2.3+build.7", "2"])
    c = {"name": name, "type": "custom_attribute", "value": v}
    if m is not None:
        c["match"] = m
    return c


def tree(rng, depth, make_leaf):
    if depth == 0 or rng.random() < 0.35:
        return make_leaf()
    op = rng.choice(["and", "or", "not"])
    n = 1 if op == "not" else rng.randint(1, 3)
    return [op] + [tree(rng, depth - 1, make_leaf) for _ in range(n)]


def build(seed):
    rng = random.Random(seed)
    ids = iter(range(seed * 100000 + 1, seed * 100000 + 99999))

    def nid():
        return str(next(ids))

    attributes = [{"id": nid(), "key": k} for k, _ in ATTRS]
    audiences, typed = [], []
    aud_ids = []
    for i in range(rng.randint(6, 12)):
        aid = nid()
        aud_ids.append(aid)
        cond = ["and", tree(rng, 3, lambda: leaf(rng))]
        if rng.random() < 0.3:
            audiences.append({"id": aid, "name": f"legacy_{i}", "conditions": json.dumps(cond)})
            if rng.random() < 0.5:  # same id typed: typed wins
                typed.append({"id": aid, "name": f"typed_{i}", "conditions": ["or", leaf(rng)]})
        else:
            typed.append({"id": aid, "name": f"typed_{i}", "conditions": cond})

    def audience_fields():
        r = rng.random()
        if r < 0.3:
            return {"audienceIds": []}
        if r < 0.6:
            return {"audienceIds": rng.sample(aud_ids, rng.randint(1, 2))}
        ids_pool = aud_ids + ["999999"]
        return {"audienceIds": [rng.choice(aud_ids)],
                "audienceConditions": tree(rng, 2, lambda: rng.choice(ids_pool))}

    def variations(n, var_defs):
        out = []
        for k in range(n):
            v = {"id": nid(), "key": rng.choice([f"v{k}", "on", "off", "shared"]) if rng.random() < 0.3 else f"var_{k}"}
            if rng.random() < 0.9:
                v["featureEnabled"] = rng.random() < 0.7
            usages = [{"id": d["id"], "value": rng.choice(VAR_TYPES[d["_t"]][2])}
                      for d in var_defs if rng.random() < 0.6]
            if usages or rng.random() < 0.5:
                v["variables"] = usages
            out.append(v)
        return out

    def traffic(vs):
        cuts = sorted(rng.sample(range(0, 10001), rng.randint(1, len(vs) + 2)))
        alloc = []
        for end in cuts:
            r = rng.random()
            ent = "" if r < 0.1 else ("424242" if r < 0.13 else rng.choice(vs)["id"])
            alloc.append({"entityId": ent, "endOfRange": end})
        return alloc

    def experiment(key, var_defs, status=None):
        vs = variations(rng.randint(1, 3), var_defs)
        e = {"id": nid(), "key": key, "layerId": nid(), "status": status or rng.choice(STATUSES),
             "variations": vs, "trafficAllocation": traffic(vs), "forcedVariations": {}}
        e.update(audience_fields())
        if rng.random() < 0.15:
            e["forcedVariations"] = {rng.choice(["alice", "bob", "user_1"]): rng.choice(vs)["key"]}
        return e

    experiments, groups, rollouts, flags, events = [], [], [], [], []
    for g in range(rng.randint(0, 2)):
        gexps = []
        gid = nid()
        for k in range(rng.randint(1, 3)):
            gexps.append(experiment(f"g{g}_exp{k}", []))
        ends = sorted(rng.sample(range(1, 10001), len(gexps)))
        groups.append({"id": gid, "policy": rng.choice(["random", "random", "overlapping"]),
                       "trafficAllocation": [{"entityId": e["id"], "endOfRange": end} for e, end in zip(gexps, ends)],
                       "experiments": gexps})
    group_exps = [e for g in groups for e in g["experiments"]]

    for f in range(rng.randint(5, 9)):
        fkey = f"flag_{f}"
        var_defs = []
        for k in range(rng.randint(0, 4)):
            t = rng.randrange(len(VAR_TYPES))
            typ, sub, vals = VAR_TYPES[t]
            d = {"id": nid(), "key": f"var_{k}", "type": typ, "defaultValue": rng.choice(vals), "_t": t}
            if sub:
                d["subType"] = sub
            var_defs.append(d)
        exp_ids = []
        for k in range(rng.randint(0, 2)):
            e = experiment(f"{fkey}_exp{k}", var_defs)
            r = rng.random()
            if r < 0.15:
                e["type"] = "fr"
            elif r < 0.22:
                e["cmab"] = {"attributeIds": [attributes[0]["id"]], "trafficAllocation": rng.choice([0, 5000, 10000])}
            experiments.append(e)
            exp_ids.append(e["id"])
        if group_exps and rng.random() < 0.4:
            exp_ids.insert(0, rng.choice(group_exps)["id"])
        rollout_id = ""
        if rng.random() < 0.85:
            rules = [experiment(f"{fkey}_rule{k}", var_defs, status=rng.choice(["Running", "Running", "Paused"]))
                     for k in range(rng.randint(0, 3))]
            ee = experiment(f"{fkey}_everyone_else", var_defs, status="Running")
            ee["audienceIds"] = [] if rng.random() < 0.8 else ee["audienceIds"]
            ee.pop("audienceConditions", None)
            rollout_id = nid()
            rollouts.append({"id": rollout_id, "experiments": rules + [ee]})
        for d in var_defs:
            d.pop("_t")
        flags.append({"id": nid(), "key": fkey, "experimentIds": exp_ids, "rolloutId": rollout_id,
                      "variables": var_defs})
        if exp_ids and rng.random() < 0.5:
            events.append({"id": nid(), "key": f"event_{f}", "experimentIds": exp_ids[:1]})
    events.append({"id": nid(), "key": "generic", "experimentIds": []})

    rule_ids = [e["id"] for e in experiments] + [r["id"] for ro in rollouts for r in ro["experiments"]]

    def holdout(key, local):
        vid = nid()
        h = {"id": nid(), "key": key, "status": rng.choice(["Running", "Running", "Paused"]),
             "variations": [{"id": vid, "key": "off", "featureEnabled": False}],
             "trafficAllocation": [{"entityId": vid, "endOfRange": rng.choice([0, 500, 3000, 10000])}]}
        h.update(audience_fields())
        if local:
            h["includedRules"] = rng.sample(rule_ids, min(len(rule_ids), rng.randint(1, 3)))
        elif rng.random() < 0.2:
            h["excludeTargetedDeliveries"] = True
        return h

    d = {
        "version": "4", "accountId": "70000", "projectId": str(80000 + seed), "revision": str(seed),
        "anonymizeIP": rng.random() < 0.5, "sendFlagDecisions": rng.random() < 0.6,
        "attributes": attributes, "audiences": audiences, "typedAudiences": typed,
        "events": events, "experiments": experiments, "groups": groups,
        "featureFlags": flags, "rollouts": rollouts,
        "holdouts": [holdout(f"global_{k}", False) for k in range(rng.randint(0, 2))],
        "localHoldouts": [holdout(f"local_{k}", True) for k in range(rng.randint(0, 2))],
    }
    if rng.random() < 0.7:
        d["botFiltering"] = rng.random() < 0.5
    if rng.random() < 0.3:
        d["region"] = "EU"
    return d


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=5)
    a = p.parse_args()
    for i in range(1, a.count + 1):
        path = os.path.join(HERE, f"random_{i}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(build(i), f, indent=1)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
