#!/usr/bin/env python3
"""Draws benches/scale.svg and prints the issue-21 table from one run of the scale benches.

Reads the interleaved run of `cargo bench -p flagbridge-benches --bench scale_paired`
(target/flagbridge-bench/scale_paired.json), the criterion medians of `--bench scale`
(target/criterion/**/new/estimates.json, listed next to them) and the memory reports
target/flagbridge-bench/memory-*.json written by `memory` (see benches/README.md). The JavaScript
SDK is not run here: its figures are issue 21's, shown with that sitting's JS / flagbridge ratio.

    python3 benches/scripts/scale_chart.py [--target DIR] [--svg benches/scale.svg]
"""
import argparse
import glob
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Issue 21's sitting (flagbridge before this work, the JS SDK 6.6.1): (flagbridge, JS), in ns,
# ns per flag or KB. The JS SDK is not run here; its ratio is the issue's own JS / flagbridge.
ISSUE = {
    "decide": (38.5, 2250.0),
    "decide_all_go100": (102.0, 44000.0),
    "parse_go100": (1.50e6, 1.70e6),
    "parse_large700": (19.3e6, 66.8e6),
    "rss_large700": (26.5 * 1024, 138.5 * 1024),
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


def load_paired(target):
    path = os.path.join(target, "flagbridge-bench", "scale_paired.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def rows(paired, mem):
    """(label, unit, flagbridge, crate, issue key) from the interleaved run and memory reports."""
    def get(kind, name, field):
        return (paired.get(kind, {}).get(name) or {}).get(field)

    def rss(name):
        v = mem.get(name, {}).get("vm_hwm_kb")
        return float(v) if v else None

    return [
        ("decide one flag, events off (large_700)", "ns", get("decide", "large_700", "flagbridge_ns"),
         get("decide", "large_700", "optimizely_crate_ns"), "decide"),
        ("decide one flag, events off (gen_5000)", "ns", get("decide", "gen_5000", "flagbridge_ns"),
         get("decide", "gen_5000", "optimizely_crate_ns"), None),
        ("decide_all per flag, go_100 (100 flags), 60-attribute users", "ns",
         get("decide_all", "go_100_entities", "flagbridge_ns_per_flag"), None, "decide_all_go100"),
        ("decide_all per flag, large_700, 60-attribute users", "ns",
         get("decide_all", "large_700", "flagbridge_ns_per_flag"), None, None),
        ("decide_all per flag, gen_5000", "ns", get("decide_all", "gen_5000", "flagbridge_ns_per_flag"), None, None),
        ("parse + compile go_100_entities (415 KB)", "ns", get("parse", "go_100_entities", "flagbridge_ns"),
         get("parse", "go_100_entities", "optimizely_crate_ns"), "parse_go100"),
        ("parse + compile large_700 (2 MB)", "ns", get("parse", "large_700", "flagbridge_ns"),
         get("parse", "large_700", "optimizely_crate_ns"), "parse_large700"),
        ("parse + compile gen_5000 (14 MB)", "ns", get("parse", "gen_5000", "flagbridge_ns"),
         get("parse", "gen_5000", "optimizely_crate_ns"), None),
        ("peak RSS (VmHWM), large_700 loaded, text kept (the sync runtime)", "kb", rss("flagbridge"),
         rss("optimizely_crate"), "rss_large700"),
        ("peak RSS, large_700, engine default (text not kept)", "kb", rss("flagbridge_no_text"),
         rss("optimizely_crate"), None),
        ("peak RSS, gen_5000 loaded, text kept", "kb", rss("flagbridge_gen_5000"),
         rss("optimizely_crate_gen_5000"), None),
        ("peak RSS, gen_5000, engine default (text not kept)", "kb", rss("flagbridge_no_text_gen_5000"),
         rss("optimizely_crate_gen_5000"), None),
    ]


def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v / 1024:.1f} MB" if unit == "kb" else fmt_ns(v)


def table(paired, med, mem):
    lines = ["| metric | flagbridge | `optimizely` crate (crate / flagbridge) | issue 21's sitting: flagbridge before, JS SDK (JS / flagbridge) |",
             "|---|---|---|---|"]
    for label, unit, fb, crate, key in rows(paired, mem):
        crate_s = f"{fmt(crate, unit)} ({ratio(crate, fb)})" if crate else "refuses the file / no decideAll"
        if key:
            before, js = ISSUE[key]
            issue_s = f"{fmt(before, unit)}, JS {fmt(js, unit)} ({ratio(js, before)})"
        else:
            issue_s = "-"
        lines.append(f"| {label} | {fmt(fb, unit)} | {crate_s} | {issue_s} |")
    lines.append("")
    lines.append("| parse + compile (interleaved) | bytes | flagbridge | per KB | `optimizely` crate | per KB | crate / flagbridge | criterion: flagbridge, crate |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, r in sorted(paired.get("parse", {}).items(), key=lambda kv: kv[1]["bytes"]):
        kb = r["bytes"] / 1024
        fb, c = r["flagbridge_ns"], r.get("optimizely_crate_ns")
        cf = med.get(f"scale/parse/flagbridge/{name}", {}).get("median")
        cc = med.get(f"scale/parse/optimizely_crate/{name}", {}).get("median")
        lines.append(f"| {name} | {r['bytes']} | {fmt_ns(fb)} | {fmt_ns(fb / kb)} | {fmt_ns(c)} | "
                     f"{fmt_ns(c / kb) if c else '-'} | {ratio(c, fb)} | {fmt_ns(cf)}, {fmt_ns(cc)} |")
    return "\n".join(lines)


def parse_series(paired):
    """(name, bytes, flagbridge ns, crate ns or None), smallest file first."""
    out = [(n, r["bytes"], r["flagbridge_ns"], r.get("optimizely_crate_ns"))
           for n, r in paired.get("parse", {}).items()]
    return sorted(out, key=lambda t: t[1])


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(paired, mem):
    items = [r for r in rows(paired, mem) if r[2] is not None and (r[3] is not None or r[4])]
    series = parse_series(paired)
    row_h, top = 46, 60
    ly = top + len(items) * row_h + 4
    py, ph = ly + 56, 220
    w, h = 980, py + ph + 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             '<text x="20" y="24" font-size="15" font-weight="bold">Cost relative to flagbridge (log scale, lower is better)</text>',
             '<text x="20" y="42" font-size="11">flagbridge and the optimizely crate: one interleaved run (benches/scale_paired.rs) and memory reports; '
             'JS SDK: issue 21\'s figures, as JS / flagbridge of that sitting</text>']
    x0, bar_w, max_log = 360, 430, 3.0
    for i, (label, unit, fb, crate, key) in enumerate(items):
        y = top + i * row_h
        parts.append(f'<text x="20" y="{y + 20}">{esc(label)}</text>')
        bars = [("flagbridge", 1.0, fmt(fb, unit))]
        if crate:
            bars.append(("optimizely crate", crate / fb, fmt(crate, unit)))
        if key:
            before, js = ISSUE[key]
            bars.append(("JS SDK (issue figures)", js / before, fmt(js, unit)))
        for j, (name, r, text) in enumerate(bars):
            length = max(2.0, (math.log10(max(r, 0.1)) + 1) / (max_log + 1) * bar_w)
            yy = y + j * 13
            parts.append(f'<rect x="{x0}" y="{yy}" width="{length:.1f}" height="11" fill="{COLORS[name]}"/>')
            parts.append(f'<text x="{x0 + length + 4:.1f}" y="{yy + 10}" font-size="10">{text} ({r:.2f}x)</text>')
    for k, name in enumerate(COLORS):
        parts.append(f'<rect x="{20 + k * 230}" y="{ly}" width="10" height="10" fill="{COLORS[name]}"/>')
        parts.append(f'<text x="{34 + k * 230}" y="{ly + 9}">{name}</text>')
    if series:
        px, pw = 80, 840
        parts.append(f'<text x="20" y="{py - 16}" font-size="14" font-weight="bold">Parse + compile: microseconds per KB against datafile size (log scale); flat = linear</text>')
        per_kb = [(n, b / 1024, fb / (b / 1024) / 1e3, c / (b / 1024) / 1e3 if c else None) for n, b, fb, c in series]
        vmax = max(max(p[2] for p in per_kb), max((p[3] or 0) for p in per_kb)) * 1.15
        lo, hi = math.log10(min(p[1] for p in per_kb)) - 0.1, math.log10(max(p[1] for p in per_kb)) + 0.1
        parts.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="black"/>')
        parts.append(f'<line x1="{px}" y1="{py}" x2="{px}" y2="{py + ph}" stroke="black"/>')
        for t in range(5):
            v = vmax * t / 4
            yy = py + ph - ph * t / 4
            parts.append(f'<text x="{px - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="10">{v:.1f}</text>')

        def pos(kb, v):
            return px + (math.log10(kb) - lo) / (hi - lo) * pw, py + ph - v / vmax * ph

        for name, idx in (("flagbridge", 2), ("optimizely crate", 3)):
            pts = [(pos(p[1], p[idx]), p) for p in per_kb if p[idx] is not None]
            if len(pts) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for (x, y), _ in pts)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{COLORS[name]}" stroke-width="2"/>')
            for (x, y), p in pts:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{COLORS[name]}"/>')
                parts.append(f'<text x="{x + 5:.1f}" y="{y - 5:.1f}" font-size="10">{p[idx]:.1f}</text>')
                if idx == 2:
                    parts.append(f'<text x="{x:.1f}" y="{py + ph + 14}" text-anchor="middle" font-size="10">{p[0]} ({p[1]:.0f} KB)</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default=os.path.join(ROOT, "target"))
    p.add_argument("--svg", default=os.path.join(ROOT, "benches", "scale.svg"))
    a = p.parse_args()
    med = load_medians(a.target)
    mem = load_memory(a.target)
    paired = load_paired(a.target)
    with open(a.svg, "w") as f:
        f.write(svg(paired, mem))
    print(table(paired, med, mem))
    print(f"\n(wrote {os.path.relpath(a.svg, ROOT)})")


if __name__ == "__main__":
    main()
