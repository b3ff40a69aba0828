// SigV4 signing of AWS JSON requests with the Web Crypto API (browsers on http://localhost or HTTPS, and
// Node 18+): the console signs every call like an SDK, so the server authorizes it like any other.

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(text) {
  return hex(await globalThis.crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key, text) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const imported = await globalThis.crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await globalThis.crypto.subtle.sign("HMAC", imported, encoder.encode(text)));
}

/** `yyyymmddThhmmssZ` of a date. */
export function amzDate(date) {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * The headers of a signed POST to `/` (AWS JSON protocols): `host` is signed but left for the
 * browser to send.
 */
export async function signedHeaders({ host, region, service, target, contentType, body, credentials, date = new Date() }) {
  const stamp = amzDate(date);
  const day = stamp.slice(0, 8);
  const headers = { "content-type": contentType, host, "x-amz-date": stamp, "x-amz-target": target };
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonical = [
    "POST",
    "/",
    "",
    names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join(""),
    names.join(";"),
    await sha256(body),
  ].join("\n");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", stamp, scope, await sha256(canonical)].join("\n");
  let key = await hmac(`AWS4${credentials.secretAccessKey}`, day);
  for (const part of [region, service, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  const out = { ...headers };
  delete out.host;
  out.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
  return out;
}

/** Calls one operation of an AWS JSON service and returns the parsed reply (or throws the AWS error). */
export async function callAws({ endpoint, region, service, target, version, input, credentials, fetchImpl = globalThis.fetch }) {
  const body = JSON.stringify(input || {});
  const url = new URL(endpoint);
  const headers = await signedHeaders({
    host: url.host, region, service, target, contentType: `application/x-amz-json-${version}`, body, credentials,
  });
  const response = await fetchImpl(new URL("/", url).toString(), { method: "POST", headers, body });
  const text = await response.text();
  const reply = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const code = (reply.__type || "UnknownError").split("#").pop();
    const error = new Error(`${code}: ${reply.message || reply.Message || ""}`);
    error.code = code;
    error.status = response.status;
    throw error;
  }
  return reply;
}
