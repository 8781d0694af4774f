#!/usr/bin/env python3
"""Writes the hand-designed flagbridge test datafiles into this folder.

Every datafile here was designed for flagbridge (none is copied from an SDK repository).
The content is spelled out below as Python literals, with small helpers for the repetitive
parts, so the files stay consistent (unique ids, matching variable ids). Run:

    python3 datafile-fixtures/build_datafiles.py

The output is deterministic; the JSON files are committed.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def variation(vid, key, enabled=None, variables=None):
    v = {"id": vid, "key": key}
    if enabled is not None:
        v["featureEnabled"] = enabled
    if variables is not None:
        v["variables"] = [{"id": i, "value": val} for i, val in variables]
    return v


def experiment(eid, key, layer, variations, traffic, audience_ids=(), conditions=None,
               status="Running", forced=None, **extra):
    e = {
        "id": eid,
        "key": key,
        "layerId": layer,
        "status": status,
        "variations": variations,
        "trafficAllocation": [{"entityId": ent, "endOfRange": end} for ent, end in traffic],
        "audienceIds": list(audience_ids),
        "forcedVariations": forced or {},
    }
    if conditions is not None:
        e["audienceConditions"] = conditions
    e.update(extra)
    return e


def flag(fid, key, experiment_ids=(), rollout_id="", variables=()):
    return {"id": fid, "key": key, "experimentIds": list(experiment_ids),
            "rolloutId": rollout_id, "variables": list(variables)}


def var_def(vid, key, typ, default, sub_type=None):
    v = {"id": vid, "key": key, "type": typ, "defaultValue": default}
    if sub_type:
        v["subType"] = sub_type
    return v


def cond(name, match, value, typ="custom_attribute"):
    c = {"name": name, "type": typ, "value": value}
    if match is not None:
        c["match"] = match
    return c


def typed(aid, name, conditions):
    return {"id": aid, "name": name, "conditions": conditions}


def legacy(aid, name, conditions):
    return {"id": aid, "name": name, "conditions": json.dumps(conditions)}


def base(revision, **top):
    d = {
        "version": "4",
        "accountId": "10010",
        "projectId": "20020",
        "revision": revision,
        "attributes": [],
        "audiences": [],
        "typedAudiences": [],
        "events": [],
        "experiments": [],
        "groups": [],
        "featureFlags": [],
        "rollouts": [],
    }
    d.update(top)
    return d


ON_OFF = lambda a, b: [variation(a, "on", True), variation(b, "off", False)]  # noqa: E731


# ---------------------------------------------------------------------------------------------
def experiments_file():
    """Experiments: status, whitelisting, traffic holes, bad entity ids, several rules per flag."""
    d = base("101", botFiltering=True, anonymizeIP=True, sendFlagDecisions=False,
             sdkKey="fixtureExperimentsKey", environmentKey="production")
    d["attributes"] = [{"id": "3001", "key": "country"}, {"id": "3002", "key": "age"},
                       {"id": "3003", "key": "is_beta"}, {"id": "3004", "key": "$opt_user_agent"},
                       {"id": "3005", "key": "score"}]
    d["typedAudiences"] = [
        typed("6001", "us", ["and", ["or", cond("country", "exact", "US")]]),
        typed("6002", "adult", ["and", ["or", cond("age", "ge", 18)]]),
    ]
    d["audiences"] = [legacy("$opt_dummy_audience", "Optimizely-Generated Audience for Backwards Compatibility",
                             ["or", cond("$opt_dummy_attribute", "exact", "impossible_value")])]
    exps = [
        experiment("9101", "ab_running", "8101", [variation("10101", "control", False), variation("10102", "treatment", True)],
                   [("10101", 5000), ("10102", 10000)]),
        experiment("9102", "ab_paused", "8102", ON_OFF("10103", "10104"), [("10103", 10000)], status="Paused"),
        experiment("9103", "ab_launched", "8103", ON_OFF("10105", "10106"), [("10105", 10000)], status="Launched"),
        experiment("9104", "ab_not_started", "8104", ON_OFF("10107", "10108"), [("10107", 10000)], status="Not started"),
        experiment("9105", "whitelisted", "8105",
                   [variation("10109", "control", False), variation("10110", "treatment", True)],
                   [("10110", 2500)], audience_ids=["6001"],
                   forced={"alice": "treatment", "bob": "no_such_variation", "carol": "control", "": "treatment"}),
        experiment("9106", "holes", "8106", [variation("10111", "a", True), variation("10112", "b", True)],
                   [("", 2000), ("10111", 5000), ("", 7000), ("10112", 9000)]),
        experiment("9107", "bad_entity", "8107", [variation("10113", "only", True)],
                   [("99999", 3000), ("10113", 10000)]),
        experiment("9108", "us_only", "8108", [variation("10114", "us_on", True)], [("10114", 10000)],
                   audience_ids=["6001"]),
        experiment("9109", "catch_all", "8109", [variation("10115", "fallback", True), variation("10116", "fallback_off", False)],
                   [("10115", 6000), ("10116", 10000)]),
        experiment("9110", "adult_or_us", "8110", [variation("10117", "yes", True)], [("10117", 10000)],
                   audience_ids=["6001", "6002"]),
        experiment("9111", "dummy_aud", "8111", [variation("10118", "never", True)], [("10118", 10000)],
                   audience_ids=["$opt_dummy_audience"]),
        experiment("9112", "zero_traffic", "8112", [variation("10119", "z", True)], [("10119", 0)]),
        experiment("9113", "no_traffic_list", "8113", [variation("10120", "z", True)], []),
    ]
    d["experiments"] = exps
    d["rollouts"] = [
        {"id": "7101", "experiments": [
            experiment("9151", "everyone_else_7101", "9151", [variation("10151", "rollout_on", True)],
                       [("10151", 10000)])]},
    ]
    d["featureFlags"] = [
        flag("5101", "f_ab", ["9101"]),
        flag("5102", "f_paused", ["9102"], "7101"),
        flag("5103", "f_launched", ["9103"], "7101"),
        flag("5104", "f_not_started", ["9104"]),
        flag("5105", "f_whitelist", ["9105"]),
        flag("5106", "f_holes", ["9106"]),
        flag("5107", "f_bad_entity", ["9107"]),
        flag("5108", "f_two_rules", ["9108", "9109"]),
        flag("5109", "f_or_audiences", ["9110"]),
        flag("5110", "f_dummy_audience", ["9111"], "7101"),
        flag("5111", "f_zero_traffic", ["9112", "9113"]),
        flag("5112", "f_no_rules"),
    ]
    d["events"] = [
        {"id": "4101", "key": "purchase", "experimentIds": ["9101", "9105"]},
        {"id": "4102", "key": "signup", "experimentIds": []},
        {"id": "4103", "key": "page view", "experimentIds": ["9108"]},
    ]
    return d


# ---------------------------------------------------------------------------------------------
def groups_file():
    """Mutual exclusion groups: random (with an uncovered range) and overlapping."""
    d = base("202", botFiltering=False, sendFlagDecisions=True)
    d["attributes"] = [{"id": "3201", "key": "country"}]
    d["typedAudiences"] = [typed("6201", "us", ["and", cond("country", "exact", "US")])]
    d["groups"] = [
        {"id": "1201", "policy": "random",
         "trafficAllocation": [{"entityId": "9201", "endOfRange": 3000}, {"entityId": "9202", "endOfRange": 6000},
                               {"entityId": "9203", "endOfRange": 8000}],
         "experiments": [
             experiment("9201", "grp_a", "8201", ON_OFF("10201", "10202"), [("10201", 5000), ("10202", 10000)]),
             experiment("9202", "grp_b", "8202", ON_OFF("10203", "10204"), [("10203", 10000)],
                        audience_ids=["6201"]),
             experiment("9203", "grp_paused", "8203", ON_OFF("10205", "10206"), [("10205", 10000)], status="Paused"),
         ]},
        {"id": "1202", "policy": "overlapping",
         "trafficAllocation": [],
         "experiments": [
             experiment("9211", "ovl_a", "8211", ON_OFF("10211", "10212"), [("10211", 4000), ("10212", 8000)]),
             experiment("9212", "ovl_b", "8212", ON_OFF("10213", "10214"), [("10213", 10000)],
                        forced={"alice": "off"}),
         ]},
    ]
    d["experiments"] = [
        experiment("9221", "plain", "8221", ON_OFF("10221", "10222"), [("10221", 5000), ("10222", 10000)]),
    ]
    d["rollouts"] = [
        {"id": "7201", "experiments": [
            experiment("9251", "rule_us", "9251", [variation("10251", "r_us", True)], [("10251", 10000)],
                       audience_ids=["6201"]),
            experiment("9252", "everyone_else_7201", "9252", [variation("10252", "r_all", True)], [("10252", 5000)]),
        ]},
    ]
    d["featureFlags"] = [
        flag("5201", "f_grp_a", ["9201"], "7201"),
        flag("5202", "f_grp_b", ["9202"]),
        flag("5203", "f_grp_both", ["9201", "9202", "9203"], "7201"),
        flag("5204", "f_overlap", ["9211"]),
        flag("5205", "f_overlap_two", ["9212", "9211"], "7201"),
        flag("5206", "f_mixed", ["9203", "9221"]),
    ]
    d["events"] = [{"id": "4201", "key": "click", "experimentIds": ["9201", "9202", "9211"]}]
    return d


# ---------------------------------------------------------------------------------------------
def rollouts_file():
    """Delivery rules: skip-to-everyone-else, audience miss to next rule, empty rollouts."""
    d = base("303", sendFlagDecisions=True)
    d["attributes"] = [{"id": "3301", "key": "plan"}, {"id": "3302", "key": "country"}, {"id": "3303", "key": "age"}]
    d["typedAudiences"] = [
        typed("6301", "beta", ["and", ["or", cond("plan", "exact", "beta")]]),
        typed("6302", "us", ["or", cond("country", "exact", "US")]),
        typed("6303", "adult", ["and", cond("age", "ge", 18)]),
        typed("6304", "fr", ["or", cond("country", "exact", "FR")]),
    ]
    ee = lambda rid, vid, key, end, enabled=True, aud=(): experiment(  # noqa: E731
        rid, "everyone_else_" + rid, rid, [variation(vid, key, enabled)], [(vid, end)], audience_ids=aud)
    d["rollouts"] = [
        {"id": "7301", "experiments": [
            experiment("9301", "beta_users", "9301", [variation("10301", "beta_on", True)], [("10301", 5000)],
                       audience_ids=["6301"]),
            experiment("9302", "us_users", "9302", [variation("10302", "us_on", True)], [("10302", 10000)],
                       audience_ids=["6302"]),
            experiment("9303", "adults", "9303", [variation("10303", "adult_on", True), variation("10304", "adult_off", False)],
                       [("10303", 1500), ("10304", 3000)], audience_ids=["6303"]),
            ee("9304", "10305", "ee_on", 8000),
        ]},
        {"id": "7302", "experiments": [ee("9311", "10311", "all_on", 10000)]},
        {"id": "7303", "experiments": [
            experiment("9321", "fr_users", "9321", [variation("10321", "fr_on", True)], [("10321", 10000)],
                       audience_ids=["6304"]),
            ee("9322", "10322", "ee_us_only", 10000, aud=["6302"]),
        ]},
        {"id": "7304", "experiments": []},
        {"id": "7305", "experiments": [
            experiment("9331", "paused_rule", "9331", [variation("10331", "paused_on", True)], [("10331", 10000)],
                       audience_ids=["6302"], status="Paused"),
            experiment("9332", "hole_rule", "9332", [variation("10332", "hole_on", True)], [("", 5000), ("10332", 10000)],
                       audience_ids=["6303"]),
            ee("9333", "10333", "ee_off", 10000, enabled=False),
        ]},
        {"id": "7306", "experiments": [
            experiment("9341", "whitelist_ignored", "9341", [variation("10341", "wl_on", True), variation("10342", "wl_off", False)],
                       [("10342", 10000)], forced={"alice": "wl_on"}),
        ]},
    ]
    d["experiments"] = [
        experiment("9391", "exp_us", "8391", ON_OFF("10391", "10392"), [("10391", 5000), ("10392", 10000)],
                   audience_ids=["6302"]),
    ]
    d["featureFlags"] = [
        flag("5301", "f_multi", [], "7301"),
        flag("5302", "f_ee_only", [], "7302"),
        flag("5303", "f_ee_audience", [], "7303"),
        flag("5304", "f_no_rollout"),
        flag("5305", "f_empty_rollout", [], "7304"),
        flag("5306", "f_paused_and_holes", [], "7305"),
        flag("5307", "f_exp_then_rollout", ["9391"], "7301"),
        flag("5308", "f_rollout_whitelist", [], "7306"),
    ]
    d["events"] = [{"id": "4301", "key": "checkout", "experimentIds": ["9391"]}]
    return d


# ---------------------------------------------------------------------------------------------
def audiences_file():
    """Every match type, legacy + typed audiences with shared ids, condition trees."""
    d = base("404", botFiltering=True, sendFlagDecisions=True)
    attrs = ["s", "b", "n", "f", "v", "o", "$opt_segment_hint", "unused"]
    d["attributes"] = [{"id": str(3401 + i), "key": k} for i, k in enumerate(attrs)]
    leaf = {
        "a_exact_str": cond("s", "exact", "alpha"),
        "a_exact_bool": cond("b", "exact", True),
        "a_exact_int": cond("n", "exact", 42),
        "a_exact_float": cond("f", "exact", 1.5),
        "a_default_match": cond("s", None, "beta"),
        "a_exists": cond("o", "exists", None),
        "a_substring": cond("s", "substring", "lph"),
        "a_gt": cond("n", "gt", 10),
        "a_ge": cond("n", "ge", 10.5),
        "a_lt": cond("f", "lt", 2),
        "a_le": cond("f", "le", -1.25),
        "a_semver_eq": cond("v", "semver_eq", "2.1"),
        "a_semver_lt": cond("v", "semver_lt", "2.1.3"),
        "a_semver_le": cond("v", "semver_le", "3.0.0-beta"),
        "a_semver_gt": cond("v", "semver_gt", "1.2.3+build.7"),
        "a_semver_ge": cond("v", "semver_ge", "2"),
        "a_qualified": cond("odp.audiences", "qualified", "seg_gold", typ="third_party_dimension"),
        "a_unknown_match": cond("s", "regex", "^a"),
        "a_unknown_type": cond("s", "exact", "alpha", typ="browser_dimension"),
        "a_opt_attr": cond("$opt_segment_hint", "exact", "vip"),
        "a_big_number": cond("n", "lt", 9007199254740993),
        "a_not_exists": cond("unused", "exists", None),
    }
    typed_list = []
    aid = 6401
    ids = {}
    for name, c in leaf.items():
        ids[name] = str(aid)
        typed_list.append(typed(str(aid), name, ["and", ["or", ["or", c]]]))
        aid += 1
    # A nested condition tree inside one audience.
    ids["a_tree"] = str(aid)
    typed_list.append(typed(str(aid), "a_tree", [
        "or",
        ["and", cond("s", "exact", "alpha"), ["not", cond("b", "exact", False)]],
        ["and", ["or", cond("n", "gt", 100), cond("f", "lt", -10)], ["not", ["or", cond("o", "exists", None)]]],
    ]))
    aid += 1
    # Shared id: the legacy entry says s == "legacy", the typed one says s == "typed". Typed wins.
    ids["a_shared"] = str(aid)
    shared_legacy = legacy(str(aid), "a_shared_legacy", ["and", ["or", ["or", cond("s", "exact", "legacy")]]])
    typed_list.append(typed(str(aid), "a_shared_typed", ["and", ["or", ["or", cond("s", "exact", "typed")]]]))
    aid += 1
    # Legacy-only audience (string conditions).
    ids["a_legacy_only"] = str(aid)
    legacy_only = legacy(str(aid), "a_legacy_only", ["and", ["or", ["or", cond("s", "substring", "eta")]]])
    aid += 1
    d["audiences"] = [shared_legacy, legacy_only,
                      legacy("$opt_dummy_audience", "Optimizely-Generated Audience for Backwards Compatibility",
                             ["or", cond("$opt_dummy_attribute", "exact", "impossible_value")])]
    d["typedAudiences"] = typed_list

    flags, exps = [], []
    fid, eid, vid = 5401, 9401, 10401

    def add(name, audience_ids=(), conditions=None):
        nonlocal fid, eid, vid
        e = experiment(str(eid), "exp_" + name, str(eid + 1000), [variation(str(vid), "in_" + name, True)],
                       [(str(vid), 10000)], audience_ids=audience_ids, conditions=conditions)
        exps.append(e)
        flags.append(flag(str(fid), "f_" + name, [str(eid)]))
        fid, eid, vid = fid + 1, eid + 1, vid + 1

    for name in list(leaf) + ["a_tree", "a_shared", "a_legacy_only"]:
        add(name[2:], audience_ids=[ids[name]])
    I = ids  # noqa: E741
    add("cond_and_or_not", conditions=["and", I["a_exists"], ["or", I["a_gt"], ["not", I["a_exact_bool"]]]])
    add("cond_not", conditions=["not", I["a_exact_str"]])
    add("cond_unknown_id", conditions=["or", "999999", I["a_substring"]])
    add("cond_unknown_id_and", conditions=["and", "999999", I["a_substring"]])
    add("cond_nested", conditions=["or", ["and", I["a_semver_ge"], ["not", ["or", I["a_semver_lt"]]]],
                                   ["and", I["a_qualified"], I["a_opt_attr"]]])
    add("cond_empty", conditions=[])
    add("cond_implicit_or", conditions=[I["a_exact_int"], I["a_exact_float"]])
    add("cond_not_unknown", conditions=["not", I["a_unknown_match"]])
    add("cond_overrides_ids", audience_ids=[I["a_exact_str"]], conditions=["or", I["a_exact_bool"]])
    add("ids_implicit_or", audience_ids=[I["a_exact_str"], I["a_exact_int"]])
    add("ids_dummy", audience_ids=["$opt_dummy_audience"])
    d["experiments"] = exps
    d["featureFlags"] = flags
    d["events"] = [{"id": "4401", "key": "converted", "experimentIds": [exps[0]["id"]]}]
    return d


# ---------------------------------------------------------------------------------------------
VAR_DEFS = [
    ("b", "boolean", "false", None), ("i", "integer", "7", None), ("d", "double", "1.5", None),
    ("s", "string", "default text", None), ("j", "json", '{"k": "default", "n": 1}', None),
    ("sj", "string", '{"legacy": true}', "json"),
]


def variables_file():
    """Variables of every type; usages missing; featureEnabled false; rollout variables."""
    d = base("505", botFiltering=False, anonymizeIP=False, sendFlagDecisions=True, sdkKey="fixtureVars")
    d["attributes"] = [{"id": "3501", "key": "tier"}]
    d["typedAudiences"] = [typed("6501", "gold", ["and", cond("tier", "exact", "gold")])]
    flags, exps, rollouts = [], [], []

    def defs(prefix):
        return [var_def(f"{prefix}{n}", key, t, dv, st) for n, (key, t, dv, st) in enumerate(VAR_DEFS)]

    # f_vars_a: experiment with three variations: full usages, partial usages, featureEnabled false.
    da = defs("110")
    exps.append(experiment("9501", "vars_exp", "8501", [
        variation("10501", "full", True, [("1100", "true"), ("1101", "42"), ("1102", "3.25"), ("1103", "hello"),
                                          ("1104", '{"k": "full", "list": [1, 2, 3]}'), ("1105", '{"legacy": false}')]),
        variation("10502", "partial", True, [("1101", "-5"), ("1103", "")]),
        variation("10503", "disabled", False, [("1100", "true"), ("1101", "99")]),
        variation("10504", "no_usages", True),
    ], [("10501", 2500), ("10502", 5000), ("10503", 7500), ("10504", 10000)]))
    flags.append(flag("5501", "f_vars_a", ["9501"], "7501", da))
    rollouts.append({"id": "7501", "experiments": [
        experiment("9551", "everyone_else_7501", "9551",
                   [variation("10551", "ro_on", True, [("1100", "true"), ("1102", "0.5")])], [("10551", 10000)])]})

    # f_vars_rollout: only a rollout: gold rule with usages, everyone else disabled with usages.
    db = defs("120")
    rollouts.append({"id": "7502", "experiments": [
        experiment("9561", "gold_rule", "9561",
                   [variation("10561", "gold", True, [("1200", "true"), ("1201", "1000"), ("1203", "gold text"),
                                                       ("1204", "[1, 2]"), ("1205", '"str"')])],
                   [("10561", 10000)], audience_ids=["6501"]),
        experiment("9562", "everyone_else_7502", "9562",
                   [variation("10562", "ee_disabled", False, [("1201", "1"), ("1203", "hidden")])], [("10562", 10000)]),
    ]})
    flags.append(flag("5502", "f_vars_rollout", [], "7502", db))

    # f_vars_none: flag without rules: variables come back as defaults.
    flags.append(flag("5503", "f_vars_none", [], "", defs("130")))
    # f_no_vars: a flag without variables.
    exps.append(experiment("9503", "novars_exp", "8503", ON_OFF("10505", "10506"), [("10505", 5000), ("10506", 10000)]))
    flags.append(flag("5504", "f_no_vars", ["9503"]))
    # f_odd_values: odd but well-formed default values.
    odd = [var_def("1400", "neg_int", "integer", "-2147483649"), var_def("1401", "exp_double", "double", "1e3"),
           var_def("1402", "unicode", "string", "h\u00e9llo \u2603"), var_def("1403", "json_array", "json", "[]"),
           var_def("1404", "empty_string", "string", ""), var_def("1405", "bool_true", "boolean", "true"),
           var_def("1406", "big_double", "double", "12345678.875"), var_def("1407", "json_nested", "json",
                                                                          '{"a": {"b": [true, null, 2.5]}}')]
    exps.append(experiment("9504", "odd_exp", "8504", [
        variation("10507", "odd_on", True, [("1400", "0"), ("1403", '{"x": 1}'), ("1405", "false")]),
        variation("10508", "odd_off", False, [("1400", "5")])], [("10507", 5000), ("10508", 10000)]))
    flags.append(flag("5505", "f_odd_values", ["9504"], "", odd))
    d["experiments"] = exps
    d["rollouts"] = rollouts
    d["featureFlags"] = flags
    d["events"] = [{"id": "4501", "key": "purchase", "experimentIds": ["9501"]}]
    return d


# ---------------------------------------------------------------------------------------------
def holdouts_file():
    """Global holdouts (running, paused, audience-gated, excludeTargetedDeliveries) and local ones."""
    d = base("606", botFiltering=True, sendFlagDecisions=False)
    d["attributes"] = [{"id": "3601", "key": "country"}, {"id": "3602", "key": "plan"}]
    d["typedAudiences"] = [typed("6601", "de", ["and", cond("country", "exact", "DE")]),
                           typed("6602", "pro", ["and", cond("plan", "exact", "pro")])]
    ho_var = lambda vid: [variation(vid, "off", False)]  # noqa: E731
    d["holdouts"] = [
        {"id": "1601", "key": "global_paused", "status": "Paused", "audienceIds": [],
         "variations": ho_var("10601"), "trafficAllocation": [{"entityId": "10601", "endOfRange": 10000}]},
        {"id": "1602", "key": "global_de", "status": "Running", "audienceIds": ["6601"],
         "variations": ho_var("10602"), "trafficAllocation": [{"entityId": "10602", "endOfRange": 5000}]},
        {"id": "1603", "key": "global_5pct", "status": "Running", "audienceIds": [],
         "variations": ho_var("10603"), "trafficAllocation": [{"entityId": "10603", "endOfRange": 500}],
         "includedRules": ["9601"]},
        {"id": "1604", "key": "global_no_deliveries", "status": "Running", "audienceIds": [],
         "audienceConditions": ["or", "6602"], "excludeTargetedDeliveries": True,
         "variations": ho_var("10604"), "trafficAllocation": [{"entityId": "10604", "endOfRange": 4000}]},
    ]
    d["localHoldouts"] = [
        {"id": "1611", "key": "local_exp", "status": "Running", "audienceIds": [], "includedRules": ["9601", "9602"],
         "variations": ho_var("10611"), "trafficAllocation": [{"entityId": "10611", "endOfRange": 2000}]},
        {"id": "1612", "key": "local_delivery", "status": "Running", "audienceIds": [], "includedRules": ["9651"],
         "variations": ho_var("10612"), "trafficAllocation": [{"entityId": "10612", "endOfRange": 3000}]},
        {"id": "1613", "key": "local_missing_rules", "status": "Running", "audienceIds": [],
         "variations": ho_var("10613"), "trafficAllocation": [{"entityId": "10613", "endOfRange": 10000}]},
        {"id": "1614", "key": "local_empty_rules", "status": "Running", "audienceIds": [], "includedRules": [],
         "variations": ho_var("10614"), "trafficAllocation": [{"entityId": "10614", "endOfRange": 10000}]},
        {"id": "1615", "key": "local_paused", "status": "Paused", "audienceIds": [], "includedRules": ["9652"],
         "variations": ho_var("10615"), "trafficAllocation": [{"entityId": "10615", "endOfRange": 10000}]},
    ]
    d["experiments"] = [
        experiment("9601", "exp_main", "8601", ON_OFF("10621", "10622"), [("10621", 5000), ("10622", 10000)]),
        experiment("9602", "exp_second", "8602", ON_OFF("10623", "10624"), [("10623", 10000)], audience_ids=["6602"]),
    ]
    d["rollouts"] = [
        {"id": "7601", "experiments": [
            experiment("9651", "deliver_pro", "9651", [variation("10651", "pro_on", True)], [("10651", 10000)],
                       audience_ids=["6602"]),
            experiment("9652", "everyone_else_7601", "9652", [variation("10652", "ee_on", True)], [("10652", 10000)]),
        ]},
    ]
    d["featureFlags"] = [
        flag("5601", "f_exp", ["9601"], "7601", [var_def("1601", "color", "string", "grey")]),
        flag("5602", "f_two", ["9602", "9601"]),
        flag("5603", "f_delivery", [], "7601"),
        flag("5604", "f_nothing"),
    ]
    d["events"] = [{"id": "4601", "key": "buy", "experimentIds": ["9601"]}]
    return d


# ---------------------------------------------------------------------------------------------
def fr_cmab_file():
    """Experiment types: "fr" (feature rollout), ab, unknown type, cmab."""
    d = base("707", sendFlagDecisions=True)
    d["attributes"] = [{"id": "3701", "key": "country"}, {"id": "3702", "key": "age"}]
    d["typedAudiences"] = [typed("6701", "us", ["and", cond("country", "exact", "US")])]
    d["experiments"] = [
        experiment("9701", "fr_rule", "8701", [variation("10701", "fr_on", True)], [("10701", 3000)], type="fr"),
        experiment("9702", "fr_us", "8702", [variation("10702", "fr_us_on", True)], [("10702", 10000)],
                   audience_ids=["6701"], type="fr"),
        experiment("9703", "ab_typed", "8703", ON_OFF("10703", "10704"), [("10703", 5000), ("10704", 10000)], type="ab"),
        experiment("9704", "weird_type", "8704", [variation("10705", "w_on", True)], [("10705", 4000)], type="xyz"),
        experiment("9705", "cmab_rule", "8705", ON_OFF("10706", "10707"), [("10706", 5000), ("10707", 10000)],
                   type="cmab", cmab={"attributeIds": ["3701", "3702"], "trafficAllocation": 6000}),
        experiment("9706", "fr_no_rollout", "8706", [variation("10708", "lonely", True)], [("10708", 5000)], type="fr"),
    ]
    d["rollouts"] = [
        {"id": "7701", "experiments": [
            experiment("9751", "everyone_else_7701", "9751", [variation("10751", "ee_off", False)], [("10751", 10000)])]},
        {"id": "7702", "experiments": [
            experiment("9761", "us_delivery", "9761", [variation("10761", "us_del", True)], [("10761", 10000)],
                       audience_ids=["6701"]),
            experiment("9762", "everyone_else_7702", "9762", [variation("10762", "ee2_on", True)], [("10762", 2000)])]},
    ]
    d["featureFlags"] = [
        flag("5701", "f_fr", ["9701"], "7701"),
        flag("5702", "f_fr_then_ab", ["9702", "9703"], "7702"),
        flag("5703", "f_weird", ["9704"], "7702"),
        flag("5704", "f_cmab", ["9705", "9703"], "7701"),
        flag("5705", "f_cmab_only", ["9705"], "7702"),
        flag("5706", "f_fr_no_rollout", ["9706"]),
    ]
    d["events"] = [{"id": "4701", "key": "goal", "experimentIds": ["9701", "9705"]}]
    return d


# ---------------------------------------------------------------------------------------------
def region_eu_file():
    """Region EU, anonymizeIP, botFiltering true, a plain flag set; event tags."""
    d = base("808", region="EU", anonymizeIP=True, botFiltering=True, sendFlagDecisions=True,
             sdkKey="euKey", environmentKey="eu-prod")
    d["attributes"] = [{"id": "3801", "key": "lang"}, {"id": "3802", "key": "$opt_bucketing_id"},
                       {"id": "3803", "key": "vip"}]
    d["typedAudiences"] = [typed("6801", "german", ["and", cond("lang", "substring", "de")])]
    d["experiments"] = [
        experiment("9801", "eu_test", "8801", [variation("10801", "a", True), variation("10802", "b", True),
                                               variation("10803", "c", False)],
                   [("10801", 3333), ("10802", 6666), ("10803", 10000)], audience_ids=["6801"]),
    ]
    d["rollouts"] = [{"id": "7801", "experiments": [
        experiment("9851", "everyone_else_7801", "9851", [variation("10851", "eu_on", True)], [("10851", 7000)])]}]
    d["featureFlags"] = [flag("5801", "f_eu", ["9801"], "7801", [var_def("1801", "greeting", "string", "hello")]),
                         flag("5802", "f_eu_rollout", [], "7801")]
    d["events"] = [{"id": "4801", "key": "order", "experimentIds": ["9801"]},
                   {"id": "4802", "key": "view", "experimentIds": []}]
    return d


# ---------------------------------------------------------------------------------------------
def quirks_file():
    """Reference-SDK quirks: shared variation keys, cross-experiment entity ids,
    non-numeric variation ids, dangling rolloutId, non-parsing variable values."""
    d = base("909", sendFlagDecisions=True)
    d["attributes"] = [{"id": "3901", "key": "k"}]
    d["experiments"] = [
        # Both rules have a variation keyed "shared"; ids ordered opposite to datafile order.
        experiment("9901", "q_first", "8901", [variation("10999", "shared", True), variation("10901", "first_only", True)],
                   [("10999", 5000), ("10901", 10000)]),
        experiment("9902", "q_second", "8902", [variation("10902", "shared", False), variation("10903", "second_only", True)],
                   [("10902", 5000), ("10903", 10000)]),
        # Traffic points at a variation of another experiment (JS: global variation map).
        experiment("9903", "q_foreign", "8903", [variation("10904", "own", True)], [("10903", 5000), ("10904", 10000)]),
        # Non-numeric variation id.
        experiment("9904", "q_alpha_id", "8904", [variation("var_alpha", "alpha", True)], [("var_alpha", 10000)]),
    ]
    d["rollouts"] = [{"id": "7901", "experiments": [
        experiment("9951", "q_rule", "9951", [variation("10951", "shared", True)], [("10951", 3000)]),
        experiment("9952", "everyone_else_7901", "9952", [variation("10952", "q_ee", True)], [("10952", 10000)])]}]
    d["featureFlags"] = [
        flag("5901", "f_shared", ["9902", "9901"], "7901"),
        flag("5902", "f_foreign", ["9903"]),
        flag("5903", "f_alpha", ["9904"]),
        flag("5904", "f_dangling_rollout", [], "77777"),
        flag("5905", "f_bad_values", ["9901"], "", [
            var_def("1901", "int_bad", "integer", "invalid"), var_def("1902", "int_float", "integer", "1.9"),
            var_def("1903", "bool_caps", "boolean", "True"), var_def("1904", "double_bad", "double", "abc"),
            var_def("1905", "json_bad", "json", "{not json")]),
    ]
    d["events"] = [{"id": "4901", "key": "q_event", "experimentIds": []}]
    return d


# ---------------------------------------------------------------------------------------------
def legacy_v2_file():
    """A v2 datafile: experiments, a group and events only (no featureFlags, rollouts, typedAudiences)."""
    d = {
        "version": "2", "accountId": "12001", "projectId": "22002", "revision": "42",
        "attributes": [{"id": "3201", "key": "browser"}],
        "audiences": [legacy("6201", "chrome", ["and", ["or", ["or", cond("browser", "exact", "chrome")]]])],
        "events": [{"id": "4201", "key": "v2_click", "experimentIds": ["9201"]}],
        "experiments": [experiment("9201", "v2_exp", "8201", [variation("10201", "v2_a"), variation("10202", "v2_b")],
                                   [("10201", 5000), ("10202", 10000)], audience_ids=["6201"])],
        "groups": [{"id": "1201", "policy": "random", "trafficAllocation": [{"entityId": "9211", "endOfRange": 10000}],
                    "experiments": [experiment("9211", "v2_grp", "8211", [variation("10211", "g")], [("10211", 10000)])]}],
    }
    for e in d["experiments"] + d["groups"][0]["experiments"]:
        e.pop("audienceConditions", None)
    return d


def legacy_v3_file():
    """A v3 datafile: featureFlags, rollouts and variables, legacy string audiences only."""
    d = base("33", anonymizeIP=False)
    d["version"] = "3"
    del d["typedAudiences"]
    d["attributes"] = [{"id": "3301", "key": "device"}]
    d["audiences"] = [legacy("6301", "mobile", ["and", ["or", ["or", cond("device", "exact", "mobile")]]]),
                      legacy("6302", "desktop", ["and", ["or", ["or", cond("device", None, "desktop")]]])]
    d["experiments"] = [experiment("9301", "v3_exp", "8301", [
        variation("10301", "v3_on", True, [("1301", "12")]), variation("10302", "v3_off", False, [("1301", "13")])],
        [("10301", 5000), ("10302", 10000)], audience_ids=["6301"])]
    d["rollouts"] = [{"id": "7301", "experiments": [
        experiment("9351", "v3_desktop", "9351", [variation("10351", "v3_desk", True, [("1301", "20")])],
                   [("10351", 10000)], audience_ids=["6302"]),
        experiment("9352", "everyone_else_7301", "9352", [variation("10352", "v3_ee", True)], [("10352", 5000)])]}]
    d["featureFlags"] = [flag("5301", "v3_flag", ["9301"], "7301", [var_def("1301", "count", "integer", "1")])]
    d["events"] = [{"id": "4301", "key": "v3_event", "experimentIds": ["9301"]}]
    return d


FILES = {
    "experiments": experiments_file,
    "groups": groups_file,
    "rollouts": rollouts_file,
    "audiences": audiences_file,
    "variables": variables_file,
    "holdouts": holdouts_file,
    "fr_cmab": fr_cmab_file,
    "region_eu": region_eu_file,
    "quirks": quirks_file,
    "legacy_v2": legacy_v2_file,
    "legacy_v3": legacy_v3_file,
}


def acceptance_variants():
    """Datafiles the SDK may accept or reject: (name, text). The golden records which."""
    import copy

    base_df = experiments_file()
    out = []

    def variant(name, edit):
        d = copy.deepcopy(base_df)
        edit(d)
        out.append((name, json.dumps(d, indent=1)))

    def set_(key, value):
        return lambda d: d.__setitem__(key, value)

    def drop(key):
        return lambda d: d.pop(key, None)

    variant("ok_baseline", lambda d: None)
    variant("version_5", set_("version", "5"))
    variant("version_number_4", set_("version", 4))
    variant("version_missing", drop("version"))
    variant("revision_missing", drop("revision"))
    variant("account_id_number", set_("accountId", 10010))
    for key in ["experiments", "groups", "audiences", "attributes", "events", "featureFlags",
                "rollouts", "typedAudiences"]:
        variant(f"missing_{key}", drop(key))
    variant("flag_names_unknown_experiment",
            lambda d: d["featureFlags"][0]["experimentIds"].append("123456789"))
    variant("flag_dangling_rollout", lambda d: d["featureFlags"][0].__setitem__("rolloutId", "987654"))
    variant("variation_without_key", lambda d: d["experiments"][0]["variations"][0].pop("key"))
    variant("experiment_without_traffic", lambda d: d["experiments"][0].pop("trafficAllocation"))
    variant("experiment_without_variations", lambda d: d["experiments"][0].pop("variations"))
    variant("audience_conditions_not_json", lambda d: d["audiences"][0].__setitem__("conditions", "{oops"))
    variant("integration_without_key", set_("integrations", [{"host": "https://example.com"}]))
    variant("integration_odp", set_("integrations", [{"key": "odp", "host": "https://odp.example",
                                                     "publicKey": "pk"}]))
    variant("group_names_unknown_experiment",
            lambda d: d.__setitem__("groups", [{"id": "1", "policy": "random", "experiments": [],
                                                "trafficAllocation": [{"entityId": "42", "endOfRange": 10000}]}]))
    variant("feature_enabled_string", lambda d: d["experiments"][0]["variations"][0].__setitem__("featureEnabled", "yes"))
    variant("holdouts_null", set_("holdouts", None))
    variant("unknown_top_level_field", set_("somethingNew", {"a": 1}))
    out.append(("malformed_truncated", json.dumps(base_df)[:200]))
    out.append(("not_an_object", "[]"))
    out.append(("empty_object", "{}"))
    out.append(("empty_text", ""))
    return out


def main():
    for name, fn in FILES.items():
        path = os.path.join(HERE, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fn(), f, indent=2, ensure_ascii=False)
            f.write("\n")
        print("wrote", path)
    acc = os.path.join(HERE, "acceptance")
    os.makedirs(acc, exist_ok=True)
    for name, text in acceptance_variants():
        with open(os.path.join(acc, name + ".json"), "w", encoding="utf-8") as f:
            f.write(text)
    print("wrote", acc)


if __name__ == "__main__":
    main()
