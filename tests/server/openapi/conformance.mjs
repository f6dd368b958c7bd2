// conformance.mjs - issue 3's OpenAPI conformance test, against the real
// server:
//  1. the served /openapi.json validates as OpenAPI 3 (swagger-parser, pinned
//     in package-lock.json);
//  2. traffic.json (every route, every loss, every problem type, batch, gzip,
//     CORS) is sent to two servers this script owns: one with the defaults,
//     one that runs every job on the worker pool (--inline-max-cost 1) with
//     small limits; each answer must have the status traffic.json expects;
//  3. the integration suites given with --suite run with LOSSD_RESPONSE_LOG,
//     so the harness logs every response they receive from EXE (their tests
//     that need a job held on the pool run lossd-test, --lossd-test, whose
//     responses are not logged: it serves a loss the shipped lossd lacks);
//  4. every logged response validates against the served document
//     (validate.mjs), and every documented operation was answered 200 at
//     least once;
//  5. bad-responses.jsonl, responses that are wrong on purpose, must all be
//     rejected, so a validator that accepts anything fails the test.
//
//   node conformance.mjs --lossd EXE [--lossd-test EXE] [--suite EXE]...
//
// Exit 0 pass, 1 fail. Needs `npm ci` in this directory (scripts/test.sh).
import SwaggerParser from "@apidevtools/swagger-parser";
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync,
         writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { Validator, validateAll } from "./validate.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let lossd = process.env.LOSSD_EXE;
let lossdTest = process.env.LOSSD_TEST_EXE;
const suites = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--lossd")
    lossd = args[++i];
  else if (args[i] === "--lossd-test")
    lossdTest = args[++i];
  else if (args[i] === "--suite")
    suites.push(args[++i]);
  else {
    console.error(`conformance.mjs: unknown argument ${args[i]}`);
    process.exit(2);
  }
}
if (!lossd) {
  console.error("conformance.mjs: --lossd EXE (or LOSSD_EXE) is required");
  process.exit(2);
}

let failures = 0;
function fail(msg) {
  console.log(`not ok - ${msg}`);
  failures++;
}

const work = mkdtempSync(join(process.env.TMPDIR || tmpdir(), "lossd-oas-"));

// Starts `lossd serve` on 127.0.0.1, port 0; resolves when it prints the
// listening line. PR_SET_PDEATHSIG is not available here: the exit handler
// below kills what is still running.
const children = new Set();
process.on("exit", () => {
  for (const c of children)
    c.kill("SIGKILL");
});
function startLossd(extra, name) {
  const errPath = join(work, `${name}.stderr`);
  const child = spawn(lossd, ["serve", "--host", "127.0.0.1", "--port", "0",
                              "--drain-seconds", "0", ...extra],
                      { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.stderr.on("data", (d) => appendFileSync(errPath, d));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name}: no listening ` +
                                                    `line in 30 s`)), 30000);
    child.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0)
        return;
      clearTimeout(timer);
      const line = JSON.parse(out.slice(0, nl));
      resolve({ child, errPath, name,
                url: `http://127.0.0.1:${line.port}` });
    });
    child.on("exit", (code) => reject(new Error(`${name} exited ${code}`)));
  });
}

async function stopLossd(s) {
  const done = new Promise((resolve) => s.child.on("exit",
    (code, sig) => resolve([code, sig])));
  s.child.kill("SIGTERM");
  const timeout = new Promise((resolve) => setTimeout(
    () => resolve(["timeout", null]), 20000));
  const [code, sig] = await Promise.race([done, timeout]);
  children.delete(s.child);
  if (code !== 0)
    fail(`${s.name}: exit ${code} ${sig ?? ""} after SIGTERM`);
  let err = "";
  try {
    err = readFileSync(s.errPath, "utf8");
  } catch {
    // nothing written
  }
  for (const report of ["ERROR: AddressSanitizer", "runtime error:",
                        "LeakSanitizer"])
    if (err.includes(report))
      fail(`${s.name}: sanitizer report in stderr:\n${err}`);
}

// One request; logs the response as the C harness does.
async function send(s, t, log) {
  const headers = { ...(t.headers || {}) };
  let body;
  if (t.raw !== undefined)
    body = t.raw;
  else if (t.body !== undefined)
    body = JSON.stringify(t.body);
  if (body !== undefined && !Object.keys(headers).some(
        (h) => h.toLowerCase() === "content-type"))
    headers["Content-Type"] = "application/json";
  if (t.gzip) {
    body = gzipSync(body);
    headers["Content-Encoding"] = "gzip";
  }
  const res = await fetch(s.url + t.path, {
    method: t.method, headers, body, signal: AbortSignal.timeout(60000) });
  // fetch inflates gzip and deflate bodies: what is logged is the decoded
  // body, without the encoding.
  const text = await res.text();
  const rh = Object.fromEntries(res.headers.entries());
  delete rh["content-encoding"];
  const entry = { method: t.method, path: t.path, status: res.status,
                  headers: rh, body: text };
  if (res.headers.get("content-type"))
    entry.content_type = res.headers.get("content-type");
  appendFileSync(log, JSON.stringify(entry) + "\n");
  if (res.status !== t.status)
    fail(`${s.name}: ${t.name}: ${t.method} ${t.path} answered ` +
         `${res.status}, expected ${t.status}: ${text.slice(0, 300)}`);
  if (!res.headers.get("x-request-id"))
    fail(`${s.name}: ${t.name}: no X-Request-Id`);
  return res;
}

async function main() {
  const traffic = JSON.parse(readFileSync(join(here, "traffic.json"), "utf8"));
  const servers = [
    await startLossd([], "default"),
    await startLossd(["--inline-max-cost", "1", "--max-elements", "64",
                      "--max-batch-items", "8", "--cors-origins",
                      "https://a.example"], "pool"),
  ];
  const docs = {};
  for (const s of servers) {
    const res = await fetch(`${s.url}/openapi.json`);
    docs[s.name] = await res.json();
    try {
      // validate() dereferences in place: give it a copy.
      await SwaggerParser.validate(structuredClone(docs[s.name]));
      console.log(`ok - ${s.name}: /openapi.json is a valid OpenAPI ` +
                  `${docs[s.name].openapi} document (swagger-parser)`);
    } catch (e) {
      fail(`${s.name}: /openapi.json is not valid OpenAPI: ${e.message}`);
    }
  }
  writeFileSync(join(work, "openapi.json"), JSON.stringify(docs.default));
  const logs = {};
  for (const s of servers) {
    logs[s.name] = join(work, `${s.name}.jsonl`);
    writeFileSync(logs[s.name], "");
    for (const t of traffic)
      if (!t.only || t.only === (s.name === "pool" ? "tight" : s.name))
        await send(s, t, logs[s.name]);
    // The metrics after all that traffic: a scrape is a response too.
    await send(s, { name: "metrics after traffic", method: "GET",
                    path: "/metrics", status: 200 }, logs[s.name]);
  }
  for (const s of servers)
    await stopLossd(s);

  const suiteLog = join(work, "suites.jsonl");
  writeFileSync(suiteLog, "");
  for (const exe of suites) {
    console.log(`# running ${exe} with LOSSD_RESPONSE_LOG`);
    const r = spawnSync(exe, [], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, LOSSD_RESPONSE_LOG: suiteLog, LOSSD_EXE: lossd,
             ...(lossdTest ? { LOSSD_TEST_EXE: lossdTest } : {}) },
      timeout: 900000 });
    if (r.status !== 0)
      fail(`${exe} exited ${r.status ?? r.signal}`);
  }

  for (const s of servers) {
    const v = new Validator(docs[s.name]);
    const files = [logs[s.name]];
    if (s.name === "default" && suites.length > 0)
      files.push(suiteLog);
    const [bad, n] = validateAll(v, files);
    if (bad > 0)
      fail(`${s.name}: ${bad} of ${n} responses do not match the document`);
    // Every documented operation must have been seen answering 200, or a
    // wrong schema of an untested operation would pass unnoticed.
    for (const [path, item] of Object.entries(docs[s.name].paths))
      for (const m of Object.keys(item))
        if (item[m]?.responses?.["200"] &&
            !v.seen.has(`${m.toUpperCase()} ${path} 200`))
          fail(`${s.name}: ${m.toUpperCase()} ${path} was never answered ` +
               `200 by this test`);
  }

  const bad = join(here, "bad-responses.jsonl");
  const [missed, n] = validateAll(new Validator(docs.default), [bad],
                                  { expectFail: true });
  if (n === 0)
    fail(`${bad} is empty`);
  else if (missed > 0)
    fail(`${missed} of ${n} wrong responses in ${bad} were accepted`);
  else
    console.log(`ok - all ${n} wrong responses of bad-responses.jsonl ` +
                `rejected`);
}

try {
  await main();
} catch (e) {
  fail(e.stack || String(e));
}
if (failures === 0)
  rmSync(work, { recursive: true, force: true });
else
  console.log(`# kept the logs and the document in ${work}`);
console.log(failures === 0 ? "PASS" : `FAIL: ${failures} failure(s)`);
process.exit(failures === 0 ? 0 : 1);
