// The web console's assets are served by the binary, and its SigV4 signer (the module the browser
// loads from /console/sigv4.js) makes calls that a verifying server accepts.
// Run: cd compat/node && node --test

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServer } from "./millrace-server.mjs";

const ROOT = { accessKeyId: "AKIACONSOLEROOT00001", secretAccessKey: "console-root-secret" };
let server;
let signer;

before(async () => {
  server = await startServer([
    "--auth", "verify", "--root-access-key-id", ROOT.accessKeyId, "--root-secret-access-key", ROOT.secretAccessKey,
  ], "millrace-console-");
  // Load the signer exactly as served.
  const source = await (await fetch(`${server.endpoint}/console/sigv4.js`)).text();
  const file = path.join(mkdtempSync(path.join(tmpdir(), "console-js-")), "sigv4.mjs");
  writeFileSync(file, source);
  signer = await import(file);
});

after(async () => {
  await server?.stop();
});

test("the console page and its assets are served", async () => {
  const page = await fetch(`${server.endpoint}/console`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  const html = await page.text();
  assert.match(html, /\/console\/app\.js/);
  for (const asset of ["app.js", "sigv4.js", "style.css"]) {
    const response = await fetch(`${server.endpoint}/console/${asset}`);
    assert.equal(response.status, 200, asset);
  }
  assert.equal((await fetch(`${server.endpoint}/console/missing.js`)).status >= 400, true);
});

test("calls signed by the console's signer are verified, and a wrong secret is refused", async () => {
  const call = (service, target, version, input, credentials = ROOT) => signer.callAws({
    endpoint: server.endpoint, region: "us-east-1", service, target, version, input, credentials,
  });
  await call("kinesis", "Kinesis_20131202.CreateStream", "1.1", { StreamName: "console", ShardCount: 2 });
  const streams = await call("kinesis", "Kinesis_20131202.ListStreams", "1.1", {});
  assert.deepEqual(streams.StreamNames, ["console"]);
  const alarms = await call("monitoring", "GraniteServiceVersion20100801.DescribeAlarms", "1.0", {});
  assert.deepEqual(alarms.MetricAlarms, []);
  await assert.rejects(
    call("kinesis", "Kinesis_20131202.ListStreams", "1.1", {}, { ...ROOT, secretAccessKey: "wrong" }),
    (error) => error.code === "InvalidSignatureException",
  );
});
