// Millrace against the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis).
// Run: cd compat/node && node --test
// Binary: $MILLRACE_BIN, default <repo>/target/debug/millrace.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import {
  KinesisClient,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  DescribeStreamCommand,
  ListShardsCommand,
  PutRecordsCommand,
  PutRecordCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");
const binary = process.env.MILLRACE_BIN || path.join(repoRoot, "target", "debug", "millrace");
const ACCOUNT = "000000000000";

let server;
let baseDir;
let stderrLog;
let client; // the SDK's default set-up: for Kinesis that is HTTP/2 (h2c prior knowledge on http://)
let clientHttp1; // the same over HTTP/1.1

function startServer() {
  return new Promise((resolve, reject) => {
    if (!existsSync(binary)) {
      reject(new Error(`millrace binary not found at ${binary}; run cargo build -p millrace-cli or set MILLRACE_BIN`));
      return;
    }
    baseDir = mkdtempSync(path.join(tmpdir(), "millrace-node-"));
    const dataDir = path.join(baseDir, "data");
    stderrLog = path.join(baseDir, "stderr.log");
    const errFd = openSync(stderrLog, "w");
    const proc = spawn(
      binary,
      ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--create-stream-ms", "50", "--throughput-limits", "off"],
      { stdio: ["ignore", "pipe", errFd] },
    );
    closeSync(errFd);
    let settled = false;
    let buffered = "";
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      settle(reject, new Error(`millrace did not print its listening line within 30 s (stderr: ${stderrLog})`));
    }, 30_000);
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (chunk) => {
      if (settled) return;
      buffered += chunk;
      const newline = buffered.indexOf("\n");
      if (newline < 0) return;
      const line = buffered.slice(0, newline).trim();
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (m) settle(resolve, { proc, endpoint: m[1] });
      else settle(reject, new Error(`unexpected first line from millrace: ${JSON.stringify(line)}`));
    });
    proc.on("exit", (code) => {
      settle(reject, new Error(`millrace exited with ${code} before listening (stderr: ${stderrLog})`));
    });
  });
}

function stopServer() {
  return new Promise((resolve) => {
    if (!server || server.proc.exitCode !== null) return resolve();
    const force = setTimeout(() => server.proc.kill("SIGKILL"), 10_000);
    server.proc.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    server.proc.kill("SIGTERM");
  });
}

async function waitActive(client, name) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary.StreamStatus === "ACTIVE") return out.StreamDescriptionSummary;
    if (Date.now() > deadline) throw new Error(`stream ${name} not ACTIVE after 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  server = await startServer();
  const common = {
    endpoint: server.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDMILLRACETEST", secretAccessKey: "millrace-test-secret" },
    maxAttempts: 1,
  };
  client = new KinesisClient(common);
  clientHttp1 = new KinesisClient({ ...common, requestHandler: new NodeHttpHandler() });
});

after(async () => {
  client?.destroy();
  clientHttp1?.destroy();
  await stopServer();
  if (baseDir) rmSync(baseDir, { recursive: true, force: true });
});

async function roundTrip(client, stream) {
  await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  const summary = await waitActive(client, stream);
  assert.equal(summary.OpenShardCount, 2);

  const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const payloads = [allBytes, new Uint8Array(0), Uint8Array.of(0), new TextEncoder().encode("héllo ✓")];
  for (let i = 0; i < 40; i++) payloads.push(new Uint8Array(randomBytes(i * 37)));
  const entries = payloads.map((data, i) => ({ PartitionKey: `pk-${i}`, Data: data }));

  const put = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
  assert.equal(put.FailedRecordCount ?? 0, 0);
  assert.equal(put.Records.length, entries.length);
  assert.equal(put.$metadata.httpStatusCode, 200);

  const expected = new Map(); // shard id -> [{seq, pk, data}]
  put.Records.forEach((r, i) => {
    assert.ok(r.SequenceNumber && r.ShardId, JSON.stringify(r));
    if (!expected.has(r.ShardId)) expected.set(r.ShardId, []);
    expected.get(r.ShardId).push({ seq: r.SequenceNumber, pk: entries[i].PartitionKey, data: entries[i].Data });
  });

  const single = await client.send(
    new PutRecordCommand({ StreamName: stream, PartitionKey: "a", Data: Uint8Array.of(1, 2, 3) }),
  );
  expected.get(single.ShardId).push({ seq: single.SequenceNumber, pk: "a", data: Uint8Array.of(1, 2, 3) });

  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
  assert.deepEqual(
    shards.map((s) => s.ShardId),
    ["shardId-000000000000", "shardId-000000000001"],
  );

  for (const shard of shards) {
    const want = expected.get(shard.ShardId) ?? [];
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shard.ShardId,
          ShardIteratorType: "TRIM_HORIZON",
        }),
      )
    ).ShardIterator;
    const got = [];
    let empty = 0;
    while (iterator && empty < 2 && got.length <= want.length) {
      const out = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 7 }));
      got.push(...out.Records);
      empty = out.Records.length === 0 ? empty + 1 : 0;
      iterator = out.NextShardIterator;
    }
    assert.equal(got.length, want.length, `record count on ${shard.ShardId}`);
    got.forEach((r, i) => {
      assert.equal(r.SequenceNumber, want[i].seq);
      assert.equal(r.PartitionKey, want[i].pk);
      assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
      assert.ok(
        Buffer.from(r.Data ?? new Uint8Array(0)).equals(Buffer.from(want[i].data)),
        `data of ${r.SequenceNumber} differs`,
      );
    });
    const seqs = got.map((r) => BigInt(r.SequenceNumber));
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], "sequence numbers increase");
  }
}

test("HTTP/1.1: PutRecords then GetRecords returns identical bytes in order", async () => {
  await roundTrip(clientHttp1, "node-stream-h1");
});

test("SDK default (HTTP/2): PutRecords then GetRecords returns identical bytes in order", async () => {
  await roundTrip(client, "node-stream-h2");
});

for (const [label, which] of [["HTTP/1.1", () => clientHttp1], ["SDK default (HTTP/2)", () => client]]) {
  test(`${label}: a missing stream is ResourceNotFoundException with HTTP 400`, async () => {
    await assertMissing(which());
  });
}

async function assertMissing(client) {
  await assert.rejects(
    client.send(new DescribeStreamCommand({ StreamName: "node-missing" })),
    (err) => {
      assert.equal(err.name, "ResourceNotFoundException");
      assert.equal(err.$metadata.httpStatusCode, 400);
      assert.equal(err.message, `Stream node-missing under account ${ACCOUNT} not found.`);
      assert.equal(err.$fault, "client");
      return true;
    },
  );
}
