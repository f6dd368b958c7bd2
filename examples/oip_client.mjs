// Binary tensors to lossd over the Open Inference Protocol, from Node 20
// with its built-in fetch and typed arrays; no npm packages.
//
//   node examples/oip_client.mjs [URL]        (default http://127.0.0.1:8080)
//
// evaluates cross_entropy on a small float32 batch with its gradient and
// prints {"value": ..., "grad_input": [[...]]}. As a module:
//
//   import { infer, crossEntropyWithGrad } from "./oip_client.mjs";
//   const { value, gradInput } = await crossEntropyWithGrad(url, logits, target);
//
// The request is what Triton's own client sends (the binary tensor data
// extension): a JSON header naming each input with its datatype, shape and
// parameters.binary_data_size, then the raw little-endian bytes of each
// input in the same order; `Inference-Header-Content-Length` says where the
// JSON ends. With binary outputs asked for, the answer has the same layout:
// the JSON header (its length in the response's
// Inference-Header-Content-Length), then each output that carries a
// binary_data_size, in the order of "outputs". Outputs are float64 ("FP64")
// unless an output is asked for with parameters.datatype "FP32".

import { pathToFileURL } from "node:url";

// OIP datatype <-> typed array. Typed arrays use the host's byte order and
// OIP's is little-endian: refuse the (rare) big-endian host rather than
// send wrong numbers.
const ARRAYS = {
  BOOL: Uint8Array, UINT8: Uint8Array, INT32: Int32Array,
  INT64: BigInt64Array, FP32: Float32Array, FP64: Float64Array,
};
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("oip_client.mjs assumes a little-endian host");
}

export class OIPError extends Error {
  constructor(status, message) {
    super(`${status}: ${message}`);
    this.status = status;
  }
}

function datatypeOf(array) {
  for (const [name, Type] of Object.entries(ARRAYS)) {
    if (name !== "BOOL" && array instanceof Type) return name;
  }
  throw new TypeError(`no OIP datatype for ${array?.constructor?.name}`);
}

// inputs: [{ name, shape, data: TypedArray (row-major), datatype? }];
// outputs: undefined for every output (all binary), or { name: parameters }.
// Returns { body: Uint8Array, headerLength }.
export function encodeRequest(inputs, parameters = {}, outputs) {
  const header = { inputs: [] };
  const chunks = [];
  for (const { name, shape, data, datatype = datatypeOf(data) } of inputs) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      throw new RangeError(`${name}: ${data.length} values for shape [${shape}]`);
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header.inputs.push({
      name, shape, datatype, parameters: { binary_data_size: bytes.length },
    });
    chunks.push(bytes);
  }
  const params = { ...parameters };
  if (outputs === undefined) {
    params.binary_data_output = true;
  } else {
    header.outputs = Object.entries(outputs).map(([name, p]) => ({ name, parameters: p }));
  }
  if (Object.keys(params).length) header.parameters = params;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + chunks.reduce((a, c) => a + c.length, 0));
  body.set(json, 0);
  let offset = json.length;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.length;
  }
  return { body, headerLength: json.length };
}

const NONFINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

// { name: { datatype, shape, data: TypedArray or Array } } from a response
// body (ArrayBuffer) and its Inference-Header-Content-Length (null: JSON).
export function decodeResponse(buffer, headerLength) {
  const n = headerLength === null ? buffer.byteLength : Number(headerLength);
  if (!Number.isInteger(n) || n <= 0 || n > buffer.byteLength) {
    throw new RangeError(`Inference-Header-Content-Length ${headerLength} ` +
                         `outside the ${buffer.byteLength}-byte body`);
  }
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 0, n)));
  const result = {};
  let offset = n;
  for (const out of header.outputs) {
    const size = out.parameters?.binary_data_size;
    let data;
    if (size === undefined) { // this output came as JSON data
      data = [out.data].flat(Infinity).map((v) => (typeof v === "string" ? NONFINITE[v] : v));
    } else {
      const Type = ARRAYS[out.datatype];
      if (!Type) throw new TypeError(`${out.name}: datatype ${out.datatype}`);
      if (offset + size > buffer.byteLength) {
        throw new RangeError(`${out.name}: ${size} bytes past the body`);
      }
      // slice() copies, so the typed array starts aligned whatever the
      // length of the JSON before it.
      data = new Type(buffer.slice(offset, offset + size));
      offset += size;
    }
    result[out.name] = { datatype: out.datatype, shape: out.shape, data };
  }
  if (offset !== buffer.byteLength) {
    throw new RangeError(`${buffer.byteLength - offset} bytes after the last output`);
  }
  return result;
}

// POST /v2/models/{loss}/infer with binary inputs. parameters: loss options,
// reduction, grad (true or "input,target"), grad_output. Throws OIPError
// with lossd's message on 4xx/5xx.
export async function infer(url, loss, inputs, { parameters, outputs } = {}) {
  const { body, headerLength } = encodeRequest(inputs, parameters, outputs);
  const res = await fetch(`${url.replace(/\/+$/, "")}/v2/models/${loss}/infer`, {
    method: "POST",
    headers: {
      "Content-Type": "application/octet-stream",
      "Inference-Header-Content-Length": String(headerLength),
    },
    body,
  });
  const buffer = await res.arrayBuffer();
  if (!res.ok) {
    const text = new TextDecoder().decode(buffer);
    let message = text;
    try {
      message = JSON.parse(text).error ?? text; // OIP's {"error": "..."}
    } catch {}
    throw new OIPError(res.status, message);
  }
  return decodeResponse(buffer, res.headers.get("inference-header-content-length"));
}

// Nested arrays from a flat row-major array and a shape ([] -> a number).
export function nest(data, shape) {
  const flat = Array.from(data, Number);
  const build = (dim, offset) => {
    if (dim === shape.length) return flat[offset];
    const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
  };
  return build(0, 0);
}

// cross_entropy of float32 logits (N, C) and int64 class indices (N,): the
// mean and its gradient, as a number and a Float64Array (row-major).
export async function crossEntropyWithGrad(url, logits, target, shape, options = {}) {
  const out = await infer(url, "cross_entropy", [
    { name: "input", shape, data: Float32Array.from(logits) },
    { name: "target", shape: [shape[0]], data: BigInt64Array.from(target, BigInt) },
  ], {
    parameters: { grad: "input", ...options },
    outputs: { value: { binary_data: true }, grad_input: { binary_data: true } },
  });
  return { value: out.value.data[0], gradInput: out.grad_input.data };
}

async function main() {
  const url = process.argv[2] ?? "http://127.0.0.1:8080";
  const logits = [2.0, 0.5, -1.0, 0.25,
                  0.1, 0.2, 3.0, -0.5,
                  -1.5, 1.0, 0.0, 0.75];
  const shape = [3, 4];
  try {
    const { value, gradInput } = await crossEntropyWithGrad(url, logits, [0, 2, 3], shape);
    console.log(JSON.stringify({ value, grad_input: nest(gradInput, shape) }));
  } catch (e) {
    console.error(`oip_client: ${e.message}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
