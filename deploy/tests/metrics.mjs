#!/usr/bin/env node
// Every series the Grafana dashboard and the alerting rules query must be
// one lossd exports, with labels it has:
//
//   node metrics.mjs METRICS.txt DASHBOARD.json RULES.yml
//
// METRICS.txt is a scrape of a running `lossd serve` (/metrics, after at
// least one API request so that lossd_requests_total has samples). Each
// PromQL expression is parsed with Prometheus' own grammar
// (@prometheus-io/lezer-promql); for every selector the metric must be
// exported, every matched label must exist on it (or be a label Prometheus
// adds to a target), and a route or loss matcher must match one of the
// values lossd uses. Labels in by(...)/on(...) must exist on some metric of
// the expression. Exits 1 with one line per problem.
import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';

// Added by Prometheus and the Prometheus Operator to every scraped series.
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint'];

const [expoFile, dashFile, rulesFile] = process.argv.slice(2);
if (!rulesFile) {
    console.error('usage: node metrics.mjs METRICS.txt DASHBOARD.json RULES.yml');
    process.exit(2);
}

// ---- what lossd exports ------------------------------------------------

const exported = new Map(); // series name -> Map(label -> Set(values))
function series(name) {
    if (!exported.has(name)) exported.set(name, new Map());
    return exported.get(name);
}
for (const line of readFileSync(expoFile, 'utf8').split('\n')) {
    let m;
    if ((m = /^# TYPE (\S+) (\S+)$/.exec(line))) {
        const [, name, type] = m;
        if (type === 'histogram' || type === 'summary') {
            series(`${name}_sum`);
            series(`${name}_count`);
            if (type === 'histogram') series(`${name}_bucket`).set('le', new Set());
        } else series(name);
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+/.exec(line))) {
        const labels = series(m[1]);
        for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
            if (!labels.has(k)) labels.set(k, new Set());
            labels.get(k).add(v);
        }
    }
}
if (exported.size === 0) {
    console.log(`metrics: ${expoFile} holds no metrics`);
    process.exit(1);
}

// ---- what the dashboard and the rules query ----------------------------

const queries = []; // [where, PromQL]
const rules = parseYaml(readFileSync(rulesFile, 'utf8'));
for (const g of rules.groups ?? [])
    for (const r of g.rules ?? []) queries.push([`${rulesFile}: ${r.alert ?? r.record}`, r.expr]);

const dash = JSON.parse(readFileSync(dashFile, 'utf8'));
function panels(list) {
    for (const p of list ?? []) {
        for (const t of p.targets ?? [])
            if (t.expr) queries.push([`${dashFile}: panel "${p.title}" ${t.refId}`, t.expr]);
        panels(p.panels);
    }
}
panels(dash.panels);
for (const a of dash.annotations?.list ?? [])
    if (a.expr) queries.push([`${dashFile}: annotation "${a.name}"`, a.expr]);
const labelQueries = []; // [where, label] from label_values(selector, label)
for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(q ?? '');
    if (!m) {
        queries.push([`${dashFile}: variable ${v.name}`, q]);
        continue;
    }
    queries.push([`${dashFile}: variable ${v.name}`, m[1]]);
    labelQueries.push([`${dashFile}: variable ${v.name}`, m[1], m[2]]);
}

// Grafana's variables, replaced by values that parse.
const VAR = 'grafana_variable';
function ungrafana(q) {
    return q
        .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
        .replace(/\$\{?\w+(?::\w+)?\}?/g, VAR);
}

// ---- checks ------------------------------------------------------------

const problems = [];
const used = new Set();
const text = (q, n) => q.slice(n.from, n.to);
const unquote = (s) => JSON.parse(s.startsWith("'") ? `"${s.slice(1, -1).replace(/"/g, '\\"')}"` : s);

function labelsOf(names) {
    const all = new Set(TARGET_LABELS);
    for (const n of names) for (const l of exported.get(n)?.keys() ?? []) all.add(l);
    return all;
}

function check(where, raw) {
    const q = ungrafana(raw);
    const tree = parser.parse(q);
    let parses = true;
    tree.iterate({ enter: (n) => { if (n.type.isError) parses = false; } });
    if (!parses) {
        problems.push(`${where}: does not parse as PromQL: ${raw}`);
        return [];
    }
    const names = [];
    const grouping = [];
    tree.iterate({
        enter(n) {
            if (n.name === 'GroupingLabels') {
                for (let c = n.node.firstChild; c; c = c.nextSibling)
                    if (c.name === 'LabelName') grouping.push(text(q, c));
                return false;
            }
            if (n.name !== 'VectorSelector') return;
            const id = n.node.getChild('Identifier');
            if (!id) {
                problems.push(`${where}: a selector without a metric name: ${text(q, n)}`);
                return false;
            }
            const name = text(q, id);
            names.push(name);
            used.add(name);
            if (!exported.has(name)) {
                problems.push(`${where}: ${name} is not a metric lossd exports`);
                return false;
            }
            const labels = labelsOf([name]);
            const matchers = n.node.getChild('LabelMatchers');
            for (let m = matchers?.firstChild; m; m = m.nextSibling) {
                if (m.name !== 'UnquotedLabelMatcher') continue;
                const label = text(q, m.getChild('LabelName'));
                const op = text(q, m.getChild('MatchOp'));
                const value = unquote(text(q, m.getChild('StringLiteral')));
                if (!labels.has(label)) {
                    problems.push(`${where}: ${name} has no label ${label}`);
                    continue;
                }
                // Routes and losses are fixed sets, all present in a scrape
                // (in the histograms, which list every value from the start).
                const known = new Set([...exported.values()].flatMap((ls) => [...(ls.get(label) ?? [])]));
                if (!['route', 'loss'].includes(label) || !known?.size || value.includes(VAR)) continue;
                const re = new RegExp(`^(?:${op.includes('~') ? value : value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})$`);
                const hit = [...known].some((k) => re.test(k));
                if (op.startsWith('!') ? ![...known].some((k) => !re.test(k)) : !hit)
                    problems.push(`${where}: ${name}{${label}${op}"${value}"} matches none of lossd's values (${[...known].join(', ')})`);
            }
            return false;
        },
    });
    const have = labelsOf(names);
    for (const l of grouping)
        if (!have.has(l)) problems.push(`${where}: grouping label ${l} is on none of ${names.join(', ')}`);
    return names;
}

for (const [where, q] of queries) check(where, q);
for (const [where, sel, label] of labelQueries) {
    const names = check(where, sel);
    if (!labelsOf(names).has(label)) problems.push(`${where}: label_values of ${label}, which ${sel} lacks`);
}

for (const p of problems) console.log(p);
console.log(
    `metrics: ${queries.length} queries use ${used.size} series (${[...used].sort().join(', ')}); ` +
        `${problems.length} problem(s)`,
);
process.exit(problems.length ? 1 : 0);
