#!/usr/bin/env node
// Offline checks of rendered Kubernetes manifests (the output of
// `kubectl kustomize`), with no cluster:
//
//   node validate.mjs [--rules RULES.yml] FILE...    (FILE "-" is stdin)
//
// 1. Schema: every object against kubernetes-models (types, required
//    fields, enums, formats) or, for the Prometheus Operator's kinds,
//    @kubernetes-models/prometheus-operator.
// 2. Unknown fields are errors (the API server would drop them silently,
//    so `resource:` for `resources:` would deploy a pod without limits):
//    built-in kinds are walked with the attribute maps of
//    @kubernetes/client-node's generated models (only that file is imported:
//    the package's root needs Node 22); for every kind, a field that the
//    schema validator never looked at is unknown too.
// 3. lossd's deployment policy (docs/deploy.md): restricted pod security,
//    probes on a named port, sizing derived from lossd's limits, drain
//    within the grace period, references between objects that resolve,
//    no NetworkPolicy ingress rule that admits every namespace (a "from"
//    absent or empty, a namespaceSelector {}, an ipBlock /0).
// 4. With --rules, a PrometheusRule holds exactly the groups of the rules
//    file that promtool tests.
//
// Prints one line per problem, "FILE: Kind/name: path: message", and exits
// 1 if there is any, 0 otherwise.
import { readFileSync } from 'node:fs';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import * as k8s from '@kubernetes/client-node/dist/gen/models/all.js';

// The measured base of the memory rule (docs/deploy.md, Sizing): resident
// memory of a warmed-up lossd (20 MiB), 1000 open connections of 32 KiB
// each (31 MiB) and a margin.
const BASE_BYTES = 64 * 2 ** 20;
// lossd's defaults (server/config.c, handlers/request.c) for what the
// ConfigMap may leave out.
const LOSSD_DEFAULTS = {
    LOSSD_MAX_WORK: 64 * 2 ** 20,
    LOSSD_MAX_INFLIGHT_BYTES: 2 ** 30,
    LOSSD_DRAIN_SECONDS: 5,
    LOSSD_EXIT_TIMEOUT: 20,
};

const problems = [];
const unknown = new Set(); // where, object and path of each unknown field
let where = '';
// Paths read "spec.containers[0].name", whoever found the problem.
function fail(obj, path, msg) {
    const id = obj ? `${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}` : '-';
    path = path.replace(/\.(\d+)(?=\.|$)/g, '[$1]').replace(/^\./, '');
    if (msg.startsWith('unknown field')) {
        const key = `${where} ${id} ${path}`;
        if (unknown.has(key)) return; // found by both checks
        unknown.add(key);
    }
    problems.push(`${where}: ${id}: ${path || '.'}: ${msg}`);
}

// ---- schemas ---------------------------------------------------------

const MODEL_ROOTS = {
    'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};

async function modelClass(apiVersion, kind) {
    const slash = apiVersion.lastIndexOf('/');
    const group = slash < 0 ? '' : apiVersion.slice(0, slash);
    const version = apiVersion.slice(slash + 1);
    const root = MODEL_ROOTS[group] ?? 'kubernetes-models';
    const path = `${root}/${group ? group + '/' : ''}${version}/${kind}`;
    try {
        const mod = await import(path);
        return mod[kind] ?? null;
    } catch (e) {
        if (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') return null;
        throw e;
    }
}

// Wraps value so that every key the schema validator reads is recorded;
// enumerating an object's keys (a map type) counts as reading them all.
function tracked(value, path, seen) {
    if (value === null || typeof value !== 'object') return value;
    const read = new Set();
    seen.push({ path, value, read });
    const children = Array.isArray(value)
        ? value.map((v, i) => tracked(v, `${path}[${i}]`, seen))
        : Object.fromEntries(
              Object.entries(value).map(([k, v]) => [
                  k,
                  tracked(v, `${path}.${k}`, seen),
              ]),
          );
    return new Proxy(children, {
        get(t, k, r) {
            if (typeof k === 'string') read.add(k);
            return Reflect.get(t, k, r);
        },
        has(t, k) {
            if (typeof k === 'string') read.add(k);
            return Reflect.has(t, k);
        },
        ownKeys(t) {
            read.add('*');
            return Reflect.ownKeys(t);
        },
    });
}

async function checkSchema(obj) {
    const Cls = await modelClass(obj.apiVersion, obj.kind);
    if (!Cls) {
        fail(obj, '', `no schema for ${obj.apiVersion} ${obj.kind}`);
        return;
    }
    const seen = [];
    const proxy = tracked(obj, '', seen);
    try {
        Cls.prototype.validate.call(proxy);
    } catch (e) {
        for (const err of e.errors ?? [{ instancePath: '', message: e.message }]) {
            const extra = err.params?.allowedValues
                  ? ` (${err.params.allowedValues.join(', ')})`
                  : '';
            fail(obj, err.instancePath.replaceAll('/', '.'), `${err.message}${extra}`);
        }
        return; // an invalid subtree is not walked: unread keys would be noise
    }
    const bad = []; // paths of unknown fields: their contents are not reported again
    for (const { path, value, read } of seen) {
        if (Array.isArray(value) || read.has('*')) continue;
        if (bad.some((b) => path === b || path.startsWith(b + '.') || path.startsWith(b + '['))) continue;
        for (const k of Object.keys(value))
            if (!read.has(k)) {
                fail(obj, `${path}.${k}`, 'unknown field (not in the schema)');
                bad.push(`${path}.${k}`);
            }
    }
}

// ---- unknown fields via @kubernetes/client-node's models ---------------

function clientNodeModel(apiVersion, kind) {
    const version = apiVersion.slice(apiVersion.lastIndexOf('/') + 1);
    const name = version.charAt(0).toUpperCase() + version.slice(1) + kind;
    return k8s[name] ? name : null;
}

const MAP = /^\{ \[key: string\]: (.+); \}$/;
const ARRAY = /^Array<(.+)>$/;

function walk(obj, value, type, format, path) {
    if (value === null || value === undefined) return;
    let m;
    if ((m = ARRAY.exec(type))) {
        if (!Array.isArray(value)) return fail(obj, path, `expected a list (${type})`);
        value.forEach((v, i) => walk(obj, v, m[1], format, `${path}[${i}]`));
        return;
    }
    if ((m = MAP.exec(type))) {
        if (typeof value !== 'object' || Array.isArray(value))
            return fail(obj, path, `expected a map (${type})`);
        for (const [k, v] of Object.entries(value)) walk(obj, v, m[1], format, `${path}.${k}`);
        return;
    }
    switch (type) {
        case 'string':
        case 'Date':
            if (typeof value !== 'string') fail(obj, path, `expected a string, got ${JSON.stringify(value)}`);
            return;
        case 'number':
            if (typeof value !== 'number') fail(obj, path, `expected a number, got ${JSON.stringify(value)}`);
            else if (/^int/.test(format) && !Number.isInteger(value)) fail(obj, path, 'expected an integer');
            return;
        case 'boolean':
            if (typeof value !== 'boolean') fail(obj, path, `expected true or false, got ${JSON.stringify(value)}`);
            return;
        case 'IntOrString':
            if (typeof value !== 'string' && !Number.isInteger(value))
                fail(obj, path, `expected an integer or a string, got ${JSON.stringify(value)}`);
            return;
        case 'any':
        case 'object':
            return;
    }
    const cls = k8s[type];
    if (!cls?.getAttributeTypeMap) return; // an enum: a string, checked by the schema
    if (typeof value !== 'object' || Array.isArray(value))
        return fail(obj, path, `expected an object (${type})`);
    const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a]));
    for (const [k, v] of Object.entries(value)) {
        const a = attrs.get(k);
        if (!a) {
            fail(obj, `${path}.${k}`, `unknown field in ${type}`);
            continue;
        }
        walk(obj, v, a.type, a.format, `${path}.${k}`);
    }
}

// ---- lossd's policy ----------------------------------------------------

const BIN = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };
// A lossd size: decimal with an optional binary K/M/G (server/config.c).
function lossdSize(s) {
    const m = /^(\d+)(?:([KkMG])(?:i?B)?)?$/.exec(String(s));
    if (!m) return NaN;
    return Number(m[1]) * BIN[(m[2] ?? '').toUpperCase()];
}

const QSUF = {
    '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
};
// A Kubernetes quantity, in base units (cores, bytes).
function quantity(q) {
    const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
    if (!m || !(m[2] ?? '' in QSUF)) return NaN;
    return Number(m[1]) * QSUF[m[2] ?? ''];
}

const mib = (b) => `${Math.round((b / 2 ** 20) * 10) / 10} MiB`;

// JSON with sorted keys: kustomize reorders them.
function canonical(v) {
    if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
    if (v && typeof v === 'object')
        return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
    return JSON.stringify(v);
}

function matches(selector, labels) {
    return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

function checkPolicy(objs, rulesFile) {
    const byKind = (k) => objs.filter((o) => o.kind === k);
    const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata.name, c]));
    const accounts = new Map(byKind('ServiceAccount').map((s) => [s.metadata.name, s]));
    const deployments = byKind('Deployment');
    if (deployments.length === 0) fail(null, '', 'no Deployment rendered');

    for (const d of deployments) {
        const spec = d.spec ?? {};
        const pod = spec.template?.spec ?? {};
        const podLabels = spec.template?.metadata?.labels ?? {};
        const P = 'spec.template.spec';
        if (!matches(spec.selector?.matchLabels, podLabels))
            fail(d, 'spec.selector', 'does not select the pod template');
        const ru = spec.strategy?.rollingUpdate ?? {};
        if (spec.strategy?.type !== 'RollingUpdate' || ru.maxUnavailable !== 0)
            fail(d, 'spec.strategy', 'a RollingUpdate with maxUnavailable: 0 keeps capacity during a rollout');
        if (!(ru.maxSurge === 1 || (typeof ru.maxSurge === 'string' && ru.maxSurge !== '0%')))
            fail(d, 'spec.strategy.rollingUpdate.maxSurge', 'must be 1 (maxUnavailable 0 needs a surge)');

        // Pod security: the restricted profile, with numeric ids.
        const psc = pod.securityContext ?? {};
        if (psc.runAsNonRoot !== true) fail(d, `${P}.securityContext.runAsNonRoot`, 'must be true');
        for (const f of ['runAsUser', 'runAsGroup'])
            if (!(Number.isInteger(psc[f]) && psc[f] > 0))
                fail(d, `${P}.securityContext.${f}`, 'must be a numeric non-root id');
        if (!['RuntimeDefault', 'Localhost'].includes(psc.seccompProfile?.type))
            fail(d, `${P}.securityContext.seccompProfile.type`, 'must be RuntimeDefault');
        for (const f of ['hostNetwork', 'hostPID', 'hostIPC'])
            if (pod[f]) fail(d, `${P}.${f}`, 'must not be set');
        for (const v of pod.volumes ?? [])
            if (v.hostPath) fail(d, `${P}.volumes`, `hostPath volume ${v.name}`);
        if (pod.automountServiceAccountToken !== false)
            fail(d, `${P}.automountServiceAccountToken`, 'must be false: lossd never calls the API');
        const sa = accounts.get(pod.serviceAccountName);
        if (!sa) fail(d, `${P}.serviceAccountName`, `no ServiceAccount "${pod.serviceAccountName}" rendered`);
        else if (sa.automountServiceAccountToken !== false)
            fail(sa, 'automountServiceAccountToken', 'must be false');

        for (const [i, c] of (pod.containers ?? []).entries()) {
            const C = `${P}.containers[${i}]`;
            const sc = c.securityContext ?? {};
            if (sc.allowPrivilegeEscalation !== false)
                fail(d, `${C}.securityContext.allowPrivilegeEscalation`, 'must be false');
            if (sc.readOnlyRootFilesystem !== true)
                fail(d, `${C}.securityContext.readOnlyRootFilesystem`, 'must be true');
            if (sc.privileged) fail(d, `${C}.securityContext.privileged`, 'must not be true');
            if (!(sc.capabilities?.drop ?? []).includes('ALL'))
                fail(d, `${C}.securityContext.capabilities.drop`, 'must include ALL');
            for (const cap of sc.capabilities?.add ?? [])
                if (cap !== 'NET_BIND_SERVICE') fail(d, `${C}.securityContext.capabilities.add`, `${cap} is not allowed`);
            for (const f of ['runAsUser', 'runAsGroup'])
                if (sc[f] !== undefined && !(Number.isInteger(sc[f]) && sc[f] > 0))
                    fail(d, `${C}.securityContext.${f}`, 'must be a numeric non-root id');

            // Probes: httpGet on a declared, named port.
            const ports = new Set((c.ports ?? []).map((p) => p.name).filter(Boolean));
            for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
                const g = c[probe]?.httpGet;
                if (!g) {
                    fail(d, `${C}.${probe}`, `must be an httpGet probe of ${path}`);
                    continue;
                }
                if (g.path !== path) fail(d, `${C}.${probe}.httpGet.path`, `must be ${path}`);
                if (typeof g.port !== 'string' || !ports.has(g.port))
                    fail(d, `${C}.${probe}.httpGet.port`, `must name one of the container's ports (${[...ports].join(', ') || 'none'})`);
            }

            // lossd's environment: the ConfigMaps it loads, then env.
            const env = {};
            for (const [j, ef] of (c.envFrom ?? []).entries()) {
                if (!ef.configMapRef) continue;
                const cm = configMaps.get(ef.configMapRef.name);
                if (!cm) {
                    fail(d, `${C}.envFrom[${j}].configMapRef.name`, `no ConfigMap "${ef.configMapRef.name}" rendered`);
                    continue;
                }
                Object.assign(env, cm.data ?? {});
            }
            for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;

            const req = c.resources?.requests ?? {};
            const lim = c.resources?.limits ?? {};
            const cpu = quantity(req.cpu);
            const memReq = quantity(req.memory);
            const memLim = quantity(lim.memory);
            if (!(cpu > 0)) fail(d, `${C}.resources.requests.cpu`, 'must be set');
            if (!(memReq > 0)) fail(d, `${C}.resources.requests.memory`, 'must be set');
            if (!(memLim > 0)) fail(d, `${C}.resources.limits.memory`, 'must be set');
            else if (memReq > memLim) fail(d, `${C}.resources.requests.memory`, 'is above the limit');

            const workers = Number(env.LOSSD_WORKERS);
            const threads = Number(env.LOSSD_THREADS);
            if (cpu > 0) {
                const want = Math.max(1, Math.ceil(cpu));
                if (workers !== want)
                    fail(d, `${C} LOSSD_WORKERS`, `is ${env.LOSSD_WORKERS ?? 'unset'}, must match the CPU request (${want})`);
                if (threads !== Math.max(2, want))
                    fail(d, `${C} LOSSD_THREADS`, `is ${env.LOSSD_THREADS ?? 'unset'}, must match the CPU request, at least 2 (${Math.max(2, want)})`);
            }
            const size = (k) => (env[k] !== undefined ? lossdSize(env[k]) : LOSSD_DEFAULTS[k]);
            const secs = (k) => (env[k] !== undefined ? Number(env[k]) : LOSSD_DEFAULTS[k]);
            const work = size('LOSSD_MAX_WORK');
            const inflight = size('LOSSD_MAX_INFLIGHT_BYTES');
            if (Number.isNaN(work)) fail(d, `${C} LOSSD_MAX_WORK`, `not a lossd size: ${env.LOSSD_MAX_WORK}`);
            if (Number.isNaN(inflight))
                fail(d, `${C} LOSSD_MAX_INFLIGHT_BYTES`, `not a lossd size: ${env.LOSSD_MAX_INFLIGHT_BYTES}`);
            if (workers > 0 && memLim > 0 && work > 0 && inflight > 0) {
                const need = workers * work * 8 + inflight + BASE_BYTES;
                if (memLim < need)
                    fail(d, `${C}.resources.limits.memory`,
                        `${mib(memLim)} is below workers x max-work x 8 B + max-inflight-bytes + base = ` +
                        `${workers} x ${mib(work * 8)} + ${mib(inflight)} + ${mib(BASE_BYTES)} = ${mib(need)}`);
            }
            const grace = pod.terminationGracePeriodSeconds ?? 30;
            const drain = secs('LOSSD_DRAIN_SECONDS');
            const exit = secs('LOSSD_EXIT_TIMEOUT');
            if (!(grace >= drain + exit + 5))
                fail(d, `${P}.terminationGracePeriodSeconds`,
                    `${grace} s is below drain + exit timeout + 5 s = ${drain} + ${exit} + 5 s`);
        }

        // Objects that must point at this Deployment and its pods.
        const portNames = new Set((pod.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name)));
        for (const s of byKind('Service').filter((s) => matches(s.spec?.selector, podLabels))) {
            for (const [i, p] of (s.spec.ports ?? []).entries())
                if (typeof p.targetPort === 'string' && !portNames.has(p.targetPort))
                    fail(s, `spec.ports[${i}].targetPort`, `no container port named ${p.targetPort}`);
        }
        if (!byKind('Service').some((s) => s.spec?.selector && matches(s.spec.selector, podLabels)))
            fail(d, '', 'no Service selects its pods');
        if (!byKind('PodDisruptionBudget').some((p) => matches(p.spec?.selector?.matchLabels, podLabels)))
            fail(d, '', 'no PodDisruptionBudget covers its pods');
        if (!byKind('NetworkPolicy').some((n) => matches(n.spec?.podSelector?.matchLabels, podLabels)))
            fail(d, '', 'no NetworkPolicy selects its pods');
        const hpas = byKind('HorizontalPodAutoscaler').filter(
            (h) => h.spec?.scaleTargetRef?.kind === 'Deployment' && h.spec.scaleTargetRef.name === d.metadata.name,
        );
        if (hpas.length === 0) fail(d, '', 'no HorizontalPodAutoscaler targets it');
        for (const h of hpas) {
            const min = h.spec.minReplicas ?? 1;
            if (!(min <= spec.replicas && spec.replicas <= h.spec.maxReplicas))
                fail(h, 'spec', `replicas ${spec.replicas} outside [minReplicas ${min}, maxReplicas ${h.spec.maxReplicas}]`);
        }
    }
    for (const h of byKind('HorizontalPodAutoscaler')) {
        const t = h.spec?.scaleTargetRef ?? {};
        if (!deployments.some((d) => t.kind === 'Deployment' && d.metadata.name === t.name))
            fail(h, 'spec.scaleTargetRef', `no ${t.kind} "${t.name}" rendered`);
    }
    // Ingress is safe by default (docs/deploy.md, NetworkPolicy): every rule
    // names its peers, and no peer stands for every namespace or address.
    for (const n of byKind('NetworkPolicy')) {
        for (const [i, rule] of (n.spec?.ingress ?? []).entries()) {
            const R = `spec.ingress[${i}]`;
            if (!Array.isArray(rule.from) || rule.from.length === 0) {
                fail(n, `${R}.from`, 'absent or empty: admits every namespace (and every address)');
                continue;
            }
            for (const [j, peer] of rule.from.entries()) {
                const ns = peer.namespaceSelector;
                if (ns && Object.keys(ns.matchLabels ?? {}).length === 0 && (ns.matchExpressions ?? []).length === 0)
                    fail(n, `${R}.from[${j}].namespaceSelector`, 'selects every namespace: admits all namespaces');
                if (/\/0$/.test(peer.ipBlock?.cidr ?? ''))
                    fail(n, `${R}.from[${j}].ipBlock.cidr`, `${peer.ipBlock.cidr} admits every address`);
            }
        }
    }
    for (const sm of byKind('ServiceMonitor')) {
        const svcs = byKind('Service').filter((s) => matches(sm.spec?.selector?.matchLabels, s.metadata.labels));
        if (svcs.length === 0) fail(sm, 'spec.selector', 'selects no rendered Service');
        for (const [i, ep] of (sm.spec?.endpoints ?? []).entries())
            if (!svcs.every((s) => (s.spec.ports ?? []).some((p) => p.name === ep.port)))
                fail(sm, `spec.endpoints[${i}].port`, `no Service port named ${ep.port}`);
    }
    if (rulesFile) {
        const groups = parseYaml(readFileSync(rulesFile, 'utf8')).groups;
        for (const pr of byKind('PrometheusRule'))
            if (canonical(pr.spec?.groups) !== canonical(groups))
                fail(pr, 'spec.groups', `differs from ${rulesFile} (run deploy/tests/sync_rules.sh)`);
    }
}

// ---- main --------------------------------------------------------------

const args = process.argv.slice(2);
let rulesFile = null;
const files = [];
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rules') rulesFile = args[++i];
    else files.push(args[i]);
}
if (files.length === 0) {
    console.error('usage: node validate.mjs [--rules RULES.yml] FILE...');
    process.exit(2);
}
let count = 0;
for (const file of files) {
    where = file;
    const text = readFileSync(file === '-' ? 0 : file, 'utf8');
    const objs = [];
    for (const doc of parseAllDocuments(text)) {
        if (doc.errors.length) {
            for (const e of doc.errors) fail(null, '', `YAML: ${e.message}`);
            continue;
        }
        const obj = doc.toJS();
        if (obj === null) continue;
        if (typeof obj !== 'object' || !obj.apiVersion || !obj.kind) {
            fail(obj, '', 'not a Kubernetes object (apiVersion and kind)');
            continue;
        }
        objs.push(obj);
    }
    for (const obj of objs) {
        count++;
        await checkSchema(obj);
        const model = clientNodeModel(obj.apiVersion, obj.kind);
        if (model) walk(obj, obj, model, '', '');
        else if (!MODEL_ROOTS[obj.apiVersion.split('/')[0]])
            fail(obj, '', `no @kubernetes/client-node model for ${obj.apiVersion} ${obj.kind}`);
    }
    checkPolicy(objs, rulesFile);
}
for (const p of problems) console.log(p);
console.log(`validate: ${count} objects in ${files.length} file(s), ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
