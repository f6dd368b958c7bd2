// validate.mjs - checks HTTP responses against the schemas of lossd's OpenAPI
// 3.0 document.
//
//   node validate.mjs DOC.json LOG.jsonl...            every line must conform
//   node validate.mjs --expect-fail DOC.json BAD.jsonl every line must NOT
//
// A log line is {"method", "path", "status", "content_type",
// "content_encoding", "headers", "body"} as tests/server/harness.c writes it
// (LOSSD_RESPONSE_LOG). A response is matched to the document by operation:
// the path template (or an alias an operation's description states: "Also
// served at `/mse`" for `/v1/mse`), the method (HEAD as GET, without a body), the status
// (exact, then "4XX", then "default") and the media type (parameters
// ignored); then its body is validated against that media type's schema and
// its headers against the documented headers. Rules for what the document
// cannot say, each from docs/api.md:
//  - a path the document does not have answers 404 with the NotFound
//    response, whatever the method;
//  - a documented path with another method answers 405 as its operations
//    document it (with Allow);
//  - an OPTIONS answered 204 with no body is a CORS preflight (not an
//    operation of the API).
// OpenAPI 3.0 schemas are draft-04 schemas plus a few keywords: they are
// compiled with ajv-draft-04 (boolean exclusiveMinimum as in 3.0), `nullable`
// is rewritten to a "null" type, and the 3.0 formats are registered (`byte` is
// standard base64); other annotation keywords (example, ...) are ignored.
import Ajv from "ajv-draft-04";
import { readFileSync } from "node:fs";
import { gunzipSync, inflateSync } from "node:zlib";
import { pathToFileURL } from "node:url";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch",
                 "trace"];

function pointerGet(doc, ref) {
  if (!ref.startsWith("#/"))
    throw new Error(`only local $ref are supported: ${ref}`);
  let v = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (v === null || typeof v !== "object" || !(key in v))
      throw new Error(`dangling $ref ${ref}`);
    v = v[key];
  }
  return v;
}

function pointerEscape(s) {
  return s.replace(/~/g, "~0").replace(/\//g, "~1");
}

// Follows $ref chains of non-schema objects (responses, headers); returns the
// object and its JSON pointer in the document.
function deref(doc, obj, where) {
  for (let i = 0; obj && obj.$ref !== undefined; i++) {
    if (i > 32)
      throw new Error(`$ref loop at ${where}`);
    where = obj.$ref;
    obj = pointerGet(doc, obj.$ref);
  }
  return [obj, where];
}

// OpenAPI 3.0 `nullable: true` as JSON Schema, in place on a deep copy.
function rewriteNullable(node) {
  if (Array.isArray(node)) {
    node.forEach(rewriteNullable);
    return;
  }
  if (node === null || typeof node !== "object")
    return;
  if (node.nullable === true) {
    if (typeof node.type === "string")
      node.type = [node.type, "null"];
    if (Array.isArray(node.enum) && !node.enum.includes(null))
      node.enum.push(null);
  }
  delete node.nullable;
  for (const v of Object.values(node))
    rewriteNullable(v);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export class Validator {
  constructor(doc) {
    this.doc = doc;
    const copy = structuredClone(doc);
    rewriteNullable(copy);
    this.ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    this.ajv.addFormat("byte", BASE64);
    this.ajv.addFormat("int32", { type: "number",
      validate: (x) => Number.isInteger(x) && x >= -(2 ** 31) && x < 2 ** 31 });
    this.ajv.addFormat("int64", { type: "number", validate: Number.isInteger });
    this.ajv.addFormat("float", { type: "number", validate: () => true });
    this.ajv.addFormat("double", { type: "number", validate: () => true });
    this.ajv.addFormat("binary", () => true);
    this.ajv.addFormat("password", () => true);
    this.ajv.addSchema(copy, "openapi.json");
    this.compiled = new Map();
    this.templates = Object.keys(doc.paths || {}).map((t) => ({
      template: t,
      re: new RegExp("^" + t.split(/(\{[^}]+\})/).map((part) =>
        part.startsWith("{") ? "([^/]+)"
                             : part.replace(/[.*+?^$()|[\]\\]/g, "\\$&"))
        .join("") + "$"),
      names: [...t.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
    }));
    // Aliases the document states in an operation's description ("Also
    // served at `/mse`"): the same operation, and only that method.
    this.aliases = new Map();
    for (const [template, item] of Object.entries(doc.paths || {}))
      for (const method of METHODS) {
        const m = /Also served at `(\/[^`]*)`/.exec(item[method]?.description
                                                     ?? "");
        if (m)
          this.aliases.set(m[1], { template, method, op: item[method] });
      }
    this.seen = new Set(); // "METHOD template status" exercised
  }

  schemaAt(pointer) {
    let v = this.compiled.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: "openapi.json#" + pointer });
      this.compiled.set(pointer, v);
    }
    return v;
  }

  pathItem(path) {
    const bare = path.split("?")[0];
    for (const { template, re, names } of this.templates) {
      const m = re.exec(bare);
      if (m && this.paramsInEnum(this.doc.paths[template], names, m))
        return [template, this.doc.paths[template]];
    }
    const alias = this.aliases.get(bare);
    if (alias)
      return [alias.template, { [alias.method]: alias.op }];
    return [null, null];
  }

  // Whether the path parameters of a match m of a template (names in
  // order) hold values their path-level schemas allow: a model that is not
  // in the enum of {model_name} is no documented resource, so its path is
  // undocumented (404 whatever the method).
  paramsInEnum(item, names, m) {
    for (const [i, name] of names.entries()) {
      const p = (item.parameters || []).find((q) => q.in === "path" &&
                                                    q.name === name);
      if (p?.schema?.enum && !p.schema.enum.includes(decodeURIComponent(m[i + 1])))
        return false;
    }
    return true;
  }

  // The documented response for r, or throws with the reason.
  responseFor(r) {
    const method = r.method.toLowerCase();
    const [template, item] = this.pathItem(r.path);
    if (method === "options" && r.status === 204 && !r.body)
      return null; // CORS preflight
    if (item === null) {
      if (r.status !== 404)
        throw new Error(`${r.path} is not in the document, so it must be ` +
                        `404, not ${r.status}`);
      const [resp, where] = deref(this.doc,
                                  { $ref: "#/components/responses/NotFound" },
                                  "");
      return { resp, where, key: `* (undocumented path) 404` };
    }
    const look = method === "head" ? "get" : method;
    let op = item[look], opWhere =
      `#/paths/${pointerEscape(template)}/${look}`;
    if (op === undefined) {
      if (r.status !== 405)
        throw new Error(`${template} has no ${r.method} operation, so it ` +
                        `must be 405, not ${r.status}`);
      const other = METHODS.find((m) => item[m]?.responses?.["405"]);
      if (!other)
        throw new Error(`${template} answered 405 but documents no 405`);
      op = item[other];
      opWhere = `#/paths/${pointerEscape(template)}/${other}`;
    }
    const codes = [String(r.status), `${String(r.status)[0]}XX`, "default"];
    const code = codes.find((c) => op.responses?.[c] !== undefined);
    if (code === undefined)
      throw new Error(`status ${r.status} is not documented for ` +
                      `${r.method} ${template}`);
    const [resp, where] = deref(this.doc, op.responses[code],
                                `${opWhere}/responses/${code}`);
    return { resp, where, key: `${r.method} ${template} ${code}` };
  }

  // [] if r conforms, else the list of problems.
  check(r) {
    const errors = [];
    let found;
    try {
      found = this.responseFor(r);
    } catch (e) {
      return [e.message];
    }
    if (found === null)
      return [];
    const { resp, where, key } = found;
    this.seen.add(key);
    const headers = Object.fromEntries(Object.entries(r.headers || {})
      .map(([k, v]) => [k.toLowerCase(), v]));
    for (const [name, h0] of Object.entries(resp.headers || {})) {
      const [h, hWhere] = deref(this.doc, h0,
                                `${where}/headers/${pointerEscape(name)}`);
      const value = headers[name.toLowerCase()];
      if (value === undefined) {
        if (h.required && r.headers)
          errors.push(`required header ${name} is missing`);
        continue;
      }
      if (h.schema) {
        const type = h.schema.type;
        const v = type === "integer" || type === "number"
          ? (/^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value) : value;
        const ok = this.schemaAt(hWhere.slice(1) + "/schema");
        if (!ok(v))
          errors.push(`header ${name}: ${this.ajv.errorsText(ok.errors)}`);
      }
    }
    const content = resp.content || {};
    const hasBody = r.body !== undefined && r.body !== "";
    if (r.body_invalid_utf8)
      errors.push("the body is not UTF-8");
    if (r.method === "HEAD")
      return errors;
    if (Object.keys(content).length === 0) {
      if (hasBody)
        errors.push(`${key} documents no body but got ${r.body.length} bytes`);
      return errors;
    }
    if (!r.content_type) {
      errors.push(`${key}: a body without Content-Type`);
      return errors;
    }
    const media = r.content_type.split(";")[0].trim().toLowerCase();
    const mediaKey = Object.keys(content).find((m) => m.toLowerCase() === media)
      ?? Object.keys(content).find((m) => m.endsWith("/*") &&
                                          media.startsWith(m.slice(0, -1)))
      ?? Object.keys(content).find((m) => m === "*/*");
    if (mediaKey === undefined) {
      errors.push(`${key}: Content-Type ${r.content_type} is not documented ` +
                  `(${Object.keys(content).join(", ")})`);
      return errors;
    }
    const schema = content[mediaKey].schema;
    if (!schema)
      return errors;
    let body = r.body ?? "";
    if (r.content_encoding === "gzip" || r.content_encoding === "deflate") {
      // The harness logs the bytes as received only when they are UTF-8;
      // compressed bodies are logged by base64 in body_base64.
      const raw = Buffer.from(r.body_base64 ?? "", "base64");
      body = (r.content_encoding === "gzip" ? gunzipSync(raw)
                                            : inflateSync(raw)).toString();
    }
    let value = body;
    if (media === "application/json" || media.endsWith("+json")) {
      try {
        value = JSON.parse(body);
      } catch (e) {
        errors.push(`${key}: the body is not JSON: ${e.message}`);
        return errors;
      }
    }
    const ok = this.schemaAt(
      `${where.slice(1)}/content/${pointerEscape(mediaKey)}/schema`);
    if (!ok(value))
      errors.push(`${key} (${mediaKey}): ` +
                  ok.errors.slice(0, 5).map((e) =>
                    `${e.instancePath || "/"} ${e.message}`).join("; "));
    return errors;
  }
}

export function readLog(path) {
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "")
    .map((l, i) => {
      try {
        return JSON.parse(l);
      } catch (e) {
        throw new Error(`${path}:${i + 1}: not JSON: ${e.message}`);
      }
    });
}

// Validates every response of the logs; returns the number of failures.
export function validateAll(v, logs, { expectFail = false, quiet = false } = {}) {
  let bad = 0, n = 0;
  for (const log of logs)
    for (const [i, r] of readLog(log).entries()) {
      n++;
      const errors = v.check(r);
      const what = `${log}:${i + 1}: ${r.method} ${r.path} -> ${r.status}` +
        (r.comment ? ` (${r.comment})` : "");
      if (expectFail) {
        if (errors.length === 0) {
          console.log(`not ok - ${what}: validated, but it is wrong`);
          bad++;
        } else if (!quiet) {
          console.log(`ok - ${what} rejected: ${errors[0]}`);
        }
      } else if (errors.length > 0) {
        console.log(`not ok - ${what}\n  ${errors.join("\n  ")}`);
        bad++;
      }
    }
  if (!expectFail)
    console.log(`${n - bad} of ${n} responses conform to the document`);
  return [bad, n];
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const expectFail = args[0] === "--expect-fail";
  if (expectFail)
    args.shift();
  if (args.length < 2) {
    console.error("usage: validate.mjs [--expect-fail] DOC.json LOG.jsonl...");
    process.exit(2);
  }
  const v = new Validator(JSON.parse(readFileSync(args[0], "utf8")));
  const [bad, n] = validateAll(v, args.slice(1), { expectFail });
  process.exit(bad > 0 || n === 0 ? 1 : 0);
}
