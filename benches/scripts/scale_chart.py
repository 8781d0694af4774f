#!/usr/bin/env python3
"""Draws benches/scale.svg and prints the issue-21 table from one run of the scale benches.

Reads criterion's results of `cargo bench -p flagbridge-benches --bench scale` (the medians in
target/criterion/**/new/estimates.json) and the memory reports target/flagbridge-bench/memory-*.json
written by `memory` (see benches/README.md). The JavaScript SDK figures are not measured here: they
are the ones issue 21 gives (JS SDK 6.6.1, same machine), marked as such in the table and chart.

    python3 benches/scripts/scale_chart.py [--target DIR] [--svg benches/scale.svg]
"""
import argparse
import glob
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Issue 21's JS SDK figures (ns, ns per flag, ns, ns, KB); ranges as (low, high).
JS = {
    "decide": (2000.0, 2500.0),
    "decide_all_go100": (44000.0, 44000.0),  # 4.4 ms / 100 flags
    "parse_go100": (1.70e6, 1.70e6),
    "parse_large700": (66.8e6, 66.8e6),
    "rss_large700": (138.5 * 1024, 138.5 * 1024),
}
COLORS = {"flagbridge": "#2b6cb0", "optimizely crate": "#dd6b20", "JS SDK (issue figures)": "#718096"}


def load_medians(target):
    out = {}
    for bench in glob.glob(os.path.join(target, "criterion", "**", "new", "benchmark.json"), recursive=True):
        with open(bench) as f:
            meta = json.load(f)
        est_path = os.path.join(os.path.dirname(bench), "estimates.json")
        if not os.path.exists(est_path):
            continue
        with open(est_path) as f:
            est = json.load(f)
        tp = meta.get("throughput") or {}
        out[meta["full_id"]] = {
            "median": est["median"]["point_estimate"],
            "bytes": tp.get("Bytes"),
            "elements": tp.get("Elements"),
        }
    return out


def load_memory(target):
    out = {}
    for path in glob.glob(os.path.join(target, "flagbridge-bench", "memory-*.json")):
        with open(path) as f:
            m = json.load(f)
        out[os.path.basename(path)[len("memory-"):-len(".json")]] = m
    return out


def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


def ratio(other, base):
    if other is None or base is None:
        return "-"
    return f"{other / base:.2f}x"


def rows(med, mem):
    def m(key):
        return med.get(key, {}).get("median")

    def per_flag(key):
        r = med.get(key)
        return r["median"] / r["elements"] if r and r.get("elements") else None

    def rss(name):
        v = mem.get(name, {}).get("vm_hwm_kb")
        return float(v) if v else None

    return [
        # label, unit kind, flagbridge, crate, js key
        ("decide one flag, events off (gen_5000)", "ns", m("scale/decide/flagbridge/gen_5000"),
         m("scale/decide/optimizely_crate/gen_5000"), "decide"),
        ("decide_all, go_100 (100 flags), 60-attribute users, per flag", "ns",
         per_flag("scale/decide_all/flagbridge/go_100_entities"), None, "decide_all_go100"),
        ("decide_all, large_700, 60-attribute users, per flag", "ns",
         per_flag("scale/decide_all/flagbridge/large_700"), None, None),
        ("decide_all, gen_5000, per flag", "ns", per_flag("scale/decide_all/flagbridge/gen_5000"), None, None),
        ("parse + compile go_100_entities (415 KB)", "ns", m("scale/parse/flagbridge/go_100_entities"),
         m("scale/parse/optimizely_crate/go_100_entities"), "parse_go100"),
        ("parse + compile large_700 (2 MB)", "ns", m("scale/parse/flagbridge/large_700"),
         m("scale/parse/optimizely_crate/large_700"), "parse_large700"),
        ("parse + compile gen_5000 (14 MB)", "ns", m("scale/parse/flagbridge/gen_5000"),
         m("scale/parse/optimizely_crate/gen_5000"), None),
        ("peak RSS, large_700 loaded", "kb", rss("flagbridge"), rss("optimizely_crate"), "rss_large700"),
        ("peak RSS, large_700 loaded, text not kept", "kb", rss("flagbridge_no_text"), None, None),
        ("peak RSS, gen_5000 loaded", "kb", rss("flagbridge_gen_5000"), rss("optimizely_crate_gen_5000"), None),
    ]


def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v / 1024:.1f} MB" if unit == "kb" else fmt_ns(v)


def table(med, mem):
    lines = ["| metric | flagbridge | `optimizely` crate (x flagbridge) | JS SDK, issue figures (x flagbridge) |",
             "|---|---|---|---|"]
    for label, unit, fb, crate, js in rows(med, mem):
        crate_s = f"{fmt(crate, unit)} ({ratio(crate, fb)})" if crate else "refuses / not measured"
        if js:
            lo, hi = JS[js]
            js_s = fmt(lo, unit) if lo == hi else f"{fmt(lo, unit)}-{fmt(hi, unit)}"
            js_s += f" ({ratio(lo, fb)})" if lo == hi else f" ({ratio(lo, fb)}-{ratio(hi, fb)})"
        else:
            js_s = "-"
        lines.append(f"| {label} | {fmt(fb, unit)} | {crate_s} | {js_s} |")
    lines.append("")
    lines.append("| parse + compile | bytes | flagbridge | per KB | `optimizely` crate | per KB | crate / flagbridge |")
    lines.append("|---|---|---|---|---|---|---|")
    for name, fb, crate in parse_series(med):
        kb = fb["bytes"] / 1024
        c = crate["median"] if crate else None
        lines.append(f"| {name} | {fb['bytes']} | {fmt_ns(fb['median'])} | {fmt_ns(fb['median'] / kb)} | "
                     f"{fmt_ns(c)} | {fmt_ns(c / kb) if c else '-'} | {ratio(c, fb['median'])} |")
    return "\n".join(lines)


def parse_series(med):
    out = []
    for key, r in med.items():
        if key.startswith("scale/parse/flagbridge/") and r.get("bytes"):
            name = key.rsplit("/", 1)[1]
            out.append((name, r, med.get(f"scale/parse/optimizely_crate/{name}")))
    return sorted(out, key=lambda t: t[1]["bytes"])


def svg(med, mem):
    w, h = 960, 560
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             '<text x="20" y="24" font-size="15" font-weight="bold">flagbridge vs the optimizely crate vs the JS SDK (x flagbridge, log scale; lower is better)</text>']
    # Panel 1: ratio bars per metric.
    items = [r for r in rows(med, mem) if r[2] is not None and (r[3] is not None or r[4])]
    x0, bar_w, top = 330, 560, 44
    max_log = 3.5  # up to ~3000x
    for i, (label, unit, fb, crate, js) in enumerate(items):
        y = top + i * 42
        parts.append(f'<text x="20" y="{y + 16}">{label[:46]}</text>')
        series = [("flagbridge", 1.0, fmt(fb, unit))]
        if crate:
            series.append(("optimizely crate", crate / fb, fmt(crate, unit)))
        if js:
            lo, hi = JS[js]
            series.append(("JS SDK (issue figures)", (lo + hi) / 2 / fb, fmt((lo + hi) / 2, unit)))
        for j, (name, r, text) in enumerate(series):
            length = max(2.0, (math.log10(max(r, 0.1)) + 1) / (max_log + 1) * bar_w)
            yy = y + j * 12
            parts.append(f'<rect x="{x0}" y="{yy}" width="{length:.1f}" height="10" fill="{COLORS[name]}"/>')
            parts.append(f'<text x="{x0 + length + 4:.1f}" y="{yy + 9}" font-size="10">{text} ({r:.2f}x)</text>')
    ly = top + len(items) * 42 + 6
    for k, name in enumerate(COLORS):
        parts.append(f'<rect x="{20 + k * 230}" y="{ly}" width="10" height="10" fill="{COLORS[name]}"/>')
        parts.append(f'<text x="{34 + k * 230}" y="{ly + 9}">{name}</text>')
    # Panel 2: parse cost per KB against datafile size.
    series = parse_series(med)
    if series:
        px, py, pw, ph = 80, ly + 40, 820, h - ly - 90
        parts.append(f'<text x="20" y="{py - 8}" font-size="13" font-weight="bold">parse + compile: us per KB against datafile size (KB, log scale)</text>')
        kbs = [s[1]["bytes"] / 1024 for s in series]
        vals = [s[1]["median"] / (s[1]["bytes"] / 1024) / 1e3 for s in series]
        vals += [s[2]["median"] / (s[1]["bytes"] / 1024) / 1e3 for s in series if s[2]]
        lo_kb, hi_kb = math.log10(min(kbs)) - 0.1, math.log10(max(kbs)) + 0.1
        vmax = max(vals) * 1.15
        parts.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="black"/>')
        parts.append(f'<line x1="{px}" y1="{py}" x2="{px}" y2="{py + ph}" stroke="black"/>')
        for t in range(5):
            v = vmax * t / 4
            yy = py + ph - ph * t / 4
            parts.append(f'<text x="{px - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="10">{v:.1f}</text>')

        def pos(kb, v):
            return (px + (math.log10(kb) - lo_kb) / (hi_kb - lo_kb) * pw, py + ph - v / vmax * ph)

        for name, pick in (("flagbridge", lambda s: s[1]), ("optimizely crate", lambda s: s[2])):
            pts = [(s[1]["bytes"] / 1024, pick(s)["median"] / (s[1]["bytes"] / 1024) / 1e3, s[0])
                   for s in series if pick(s)]
            coords = [pos(kb, v) for kb, v, _ in pts]
            if len(coords) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{COLORS[name]}" stroke-width="2"/>')
            for (x, y), (kb, v, label) in zip(coords, pts):
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLORS[name]}"/>')
                if name == "flagbridge":
                    parts.append(f'<text x="{x:.1f}" y="{py + ph + 14}" text-anchor="middle" font-size="10">{label} ({kb:.0f} KB)</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default=os.path.join(ROOT, "target"))
    p.add_argument("--svg", default=os.path.join(ROOT, "benches", "scale.svg"))
    a = p.parse_args()
    med = load_medians(a.target)
    mem = load_memory(a.target)
    with open(a.svg, "w") as f:
        f.write(svg(med, mem))
    print(table(med, mem))
    print(f"\n(wrote {os.path.relpath(a.svg, ROOT)})")


if __name__ == "__main__":
    main()
