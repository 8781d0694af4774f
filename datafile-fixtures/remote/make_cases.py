"""Writes the remote-decision cases (decide_remote.mjs format) for the datafiles of this folder
and ../../../shared/datafiles-remote. Run from this folder: python3 make_cases.py"""
import json

R = ["INCLUDE_REASONS"]


def d(user, flags, attrs=None, options=None, **kw):
    c = {"user_id": user, "attributes": attrs or {}, "flags": flags, "options": options if options is not None else R}
    c.update(kw)
    return c


def write(name, cases):
    with open(name, "w") as f:
        for c in cases:
            f.write(json.dumps(c) + "\n")


# ---- java-sdk cmab-config.json: feature_1 -> exp_with_cmab (40 % CMAB traffic, audience gender=f)
F = ["feature_1"]
f30 = {"gender": "f", "age": 30}
java = []
for i in range(12):  # some in the 40 % traffic, some out (bucket reasons kept, no request)
    java.append(d(f"user{i}", F, f30))
java += [
    d("user1", F, f30),                                   # repeat: hits for those in traffic
    d("user1", F, {"gender": "f", "age": 31}),            # attribute change: refetch
    d("user1", F, {"gender": "f", "age": 31, "country": "US"}),  # unused attribute: hit
    d("user1", F, {"gender": "f", "age": 31}, ["INCLUDE_REASONS", "IGNORE_CMAB_CACHE"]),
    d("user1", F, {"gender": "f", "age": 31}),            # earlier uuid (IGNORE saved nothing)
    d("user1", F, {"gender": "f", "age": 31}, ["INVALIDATE_USER_CMAB_CACHE"]),
    d("user1", F, {"gender": "f", "age": 31}, ["RESET_CMAB_CACHE", "INCLUDE_REASONS"]),
    d("user2", F, f30),                                   # after the reset: refetch
    d("user1", F, {"gender": "m"}),                       # audience miss
    d("user1", F, {"gender": "f", "country": "US"}, mode="sync"),
    d("user1", None, f30),                                # decide all
    d("user1", F, f30, forced=[{"flag": "feature_1", "rule": "exp_with_cmab", "variation": "variation_b"}]),
    d("user1", F, dict(f30, **{"$opt_experiment_bucket_map": {"10390977673": {"variation_id": "10416523121"}}})),
    d("user1", F, dict(f30, **{"$opt_bucketing_id": "bucket-7"})),
    d("user3", F, f30, parallel=3),
    d("user4", F, f30, ["IGNORE_CMAB_CACHE"], parallel=3),
]
for trig in ["cmab_err500", "cmab_flaky", "cmab_badjson", "cmab_empty", "cmab_unknownvar", "cmab_numeric", "cmab_302"]:
    for i in range(4):  # several ids so that some are in the traffic
        java.append(d(f"{trig}_{i}", F, dict(f30, country="US")))
java += [
    d("cmab_err500_0", F, dict(f30, country="US"), ["ENABLED_FLAGS_ONLY"]),
    d("cmab_err500_1", None, dict(f30, country="US"), ["ENABLED_FLAGS_ONLY", "EXCLUDE_VARIABLES"]),
    d("cmab_err500_2", F, dict(f30, country="US"), []),
    d("user5", F, f30, fetch_segments=[]),                # no ODP integration: ok false
    {"type": "track", "user_id": "user1", "event_key": "nope", "attributes": f30},
]
write("java_cmab.cases.jsonl", java)

# ---- go-sdk odp-test-datafile.json: flag-segment, audiences on odp-segment-1..3
G = ["flag-segment"]
odp = [
    d("odp-user-1", G, {"age": 30}, fetch_segments=[]),
    d("odp-user-1", G, {"age": 30}, fetch_segments=[]),   # cache hit: no request
    d("odp-user-1", G, {"age": 30}, fetch_segments=["IGNORE_CACHE"]),
    d("odp-user-2", G, {}, fetch_segments=[]),
    d("odp-user-1", G, {}, fetch_segments=["RESET_CACHE"]),
    d("odp-user-2", G, {}, fetch_segments=[]),            # refetched after the reset
    d("vuid_abc123", G, {}, fetch_segments=[]),
    d("vuid_", G, {}, fetch_segments=[]),
    d("odp-user-3", G, {}, qualified_segments=["odp-segment-1"]),
    d("odp-user-3", G, {}, qualified_segments=["odp-segment-2"]),
    d("odp-user-3", G, {"country": "us"}, qualified_segments=[]),
    d("odp-user-3", G, {}, qualified_segments=["odp-segment-1"], fetch_segments=[]),
    d('odp"quote', G, {}, fetch_segments=[]),
]
for trig in ["odp_err500", "odp_invalid_id", "odp_err_other", "odp_badjson", "odp_noedges"]:
    odp.append(d(f"user-{trig}", G, {}, fetch_segments=[]))
for i in range(8):
    odp.append(d(f"odp-user-{10 + i}", None, {"age": 25}, fetch_segments=[]))
odp += [
    {"type": "odp_event", "action": "purchase", "event_type": "t1", "identifiers": {"fs-user-id": "u1", "email": "a@b.c"}, "data": {"k": 1, "s": "x", "b": True, "n": None}},
    {"type": "odp_event", "action": "login", "identifiers": {"FS_USER_ID": "u2"}},
    {"type": "odp_event", "action": "view", "identifiers": {}},
    {"type": "odp_event", "action": "view", "identifiers": {"vuid": "vuid_1"}, "data": {"nested": {"a": 1}}},
    {"type": "odp_event", "action": "", "identifiers": {"vuid": "vuid_1"}},
    {"type": "odp_event", "action": "view", "event_type": "", "identifiers": {"fs_user_id": "u3", "vuid": "v"}, "data": {"idempotence_id": "mine"}},
]
write("go_odp.cases.jsonl", odp)

# ---- remote/cmab_odp.json (this folder): every branch of the spec
A = {"gender": "f", "age": 30, "tier": 2, "plan": "pro"}
own = []
for i in range(8):
    own.append(d(f"u{i}", ["f_cmab"], A))
own += [
    d("u1", ["f_cmab"], A),
    d("u1", ["f_cmab"], dict(A, age=31)),
    d("u1", ["f_cmab"], dict(A, age=31, country="fr")),
    d("u1", ["f_cmab"], dict(A, age=31.0)),               # 31.0 hashes as 31: hit
    d("u1", ["f_cmab"], dict(A, age="31")),               # a string: refetch
    d("u1", ["f_cmab"], dict(A, age=None)),               # null: refetch
    d("u1", ["f_cmab"], {"gender": "f"}),                 # fewer attributes: refetch
    d("u1", ["f_cmab"], {"gender": "f"}, ["IGNORE_CMAB_CACHE", "RESET_CMAB_CACHE"]),
    d("u2", ["f_cmab"], A),                               # not reset by IGNORE+RESET
    d("u1", ["f_cmab"], {"gender": "f"}, ["INVALIDATE_USER_CMAB_CACHE"]),
    d("u2", ["f_cmab"], A),                               # INVALIDATE hit only u1
    d("whitelisted_user", ["f_cmab"], A),
    d("u3", ["f_cmab"], A, forced=[{"flag": "f_cmab", "rule": "cmab_main", "variation": "cmab_off"}]),
    d("u3", ["f_cmab"], A, forced=[{"flag": "f_cmab", "variation": "cmab_a"}]),
    d("u4", ["f_cmab"], dict(A, **{"$opt_experiment_bucket_map": {"5001": {"variation_id": "60013"}}})),
    d("u5", ["f_two_cmab"], dict(A, age=17)),             # audience miss on the 1st CMAB rule
    d("u5", ["f_two_cmab"], A),
    d("cmab_unknownvar_1", ["f_two_cmab"], A),            # unknown twice: rollout
    d("cmab_err500_1", ["f_two_cmab"], dict(A, age=17)),  # error in the 2nd rule after a miss
    d("u6", ["f_group", "f_group_plain"], A),
    d("u7", ["f_group", "f_group_plain"], A),
    d("g1", ["f_group", "f_group_plain"], A),
    d("g2", ["f_group", "f_group_plain"], A),
    d("g3", ["f_group", "f_group_plain"], A),
    d("u1", ["f_no_traffic"], A),
    d("u1", ["f_bad_attr"], A),
    d("u1", ["f_bad_attr"], A, []),
    d("u1", ["f_null_cmab", "f_plain", "nope"], A),
    d("u8", None, A),
    d("u8", None, A, ["ENABLED_FLAGS_ONLY"]),
    d("cmab_err500_2", None, A, ["ENABLED_FLAGS_ONLY", "INCLUDE_REASONS"]),
    d("cmab_flaky_2", None, A),
    d("u9", ["f_cmab", "f_two_cmab", "f_group"], A, parallel=4),
    d("u9", ["f_cmab"], A, ["IGNORE_CMAB_CACHE"], parallel=3),
    d("u10", None, A, ["DISABLE_DECISION_EVENT"]),
    d("u11", ["f_cmab"], A, mode="sync"),
    d("odp-u1", ["f_odp"], {}, fetch_segments=[]),
    d("odp-u2", ["f_odp"], {}, fetch_segments=[]),
    d("odp-u3", ["f_odp"], {}, fetch_segments=[]),
    d("odp-u4", ["f_odp"], {}, fetch_segments=[]),
    d("odp-u1", ["f_odp"], {}, fetch_segments=[]),
    d("vuid_odp1", ["f_odp"], {}, fetch_segments=["IGNORE_CACHE"]),
    d("odp-u5", ["f_odp"], {}, qualified_segments=["seg-b"]),
    d("odp-u5", ["f_odp"], {}, qualified_segments=["seg-a", "seg-d"]),
    d("odp-u5", ["f_odp"], {}, qualified_segments=["seg-c"], fetch_segments=["RESET_CACHE"]),
    d("odp-u6", ["f_odp", "f_cmab"], A, fetch_segments=[], parallel=2),
    {"type": "odp_event", "action": "purchase", "identifiers": {"fs-user-id": "odp-u1"}, "data": {"price": 9.5}},
    {"type": "sleep", "ms": 5},
]
for trig in ["cmab_err500", "cmab_flaky", "cmab_badjson", "cmab_empty", "cmab_unknownvar", "cmab_numeric", "cmab_302"]:
    own.append(d(f"{trig}_x", ["f_cmab", "f_two_cmab"], A))
write("cmab_odp.cases.jsonl", own)

# ---- TTL and size: run with --cmab-cache-ttl 300 --cmab-cache-size 2 --odp-cache-timeout 300
ttl = [
    d("u1", ["f_cmab"], A, fetch_segments=[]),
    d("u1", ["f_cmab"], A, fetch_segments=[]),            # hit, hit
    {"type": "sleep", "ms": 600},
    d("u1", ["f_cmab"], A, fetch_segments=[]),            # expired: refetch both
    d("u2", ["f_cmab", "f_two_cmab"], A),                 # two more entries: size 2 evicts u1
    d("u1", ["f_cmab"], A),
]
write("cmab_odp_ttl.cases.jsonl", ttl)
