// `millrace put` / `millrace tail` against the npm reference aggregation library
// (aws-kinesis-agg): each side de-aggregates what the other aggregated, byte for byte.
// Run: cd compat/node && node --test

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import {
  KinesisClient,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
  ListShardsCommand,
  PutRecordCommand,
} from "@aws-sdk/client-kinesis";
import { binary, CREDENTIALS, startServer } from "./millrace-server.mjs";

const agg = createRequire(import.meta.url)("aws-kinesis-agg");

let server;
let client;

before(async () => {
  server = await startServer();
  client = new KinesisClient({ endpoint: server.endpoint, region: "us-east-1", credentials: CREDENTIALS });
});

after(async () => {
  client?.destroy();
  await server?.stop();
});

function millrace(args, input) {
  const [command, ...rest] = args;
  const proc = spawnSync(binary, [command, "--endpoint-url", server.endpoint, ...rest], {
    input,
    encoding: "utf8",
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_REGION: "us-east-1",
      AWS_CONFIG_FILE: "/nonexistent",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      RUST_LOG: "warn",
    },
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(proc.status, 0, proc.stderr);
  return proc;
}

async function createStream(name, shards) {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (let i = 0; i < 100; i++) {
    const s = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (s.StreamDescriptionSummary.StreamStatus === "ACTIVE") return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} never became ACTIVE`);
}

async function readAll(name) {
  const shards = (await client.send(new ListShardsCommand({ StreamName: name }))).Shards;
  const out = [];
  for (const shard of shards) {
    let it = (
      await client.send(
        new GetShardIteratorCommand({ StreamName: name, ShardId: shard.ShardId, ShardIteratorType: "TRIM_HORIZON" }),
      )
    ).ShardIterator;
    for (;;) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: it }));
      out.push(...page.Records);
      if (page.Records.length === 0 && page.MillisBehindLatest === 0) break;
      it = page.NextShardIterator;
      if (!it) break;
    }
  }
  return out;
}

test("aws-kinesis-agg de-aggregates what millrace put aggregated", async () => {
  await createStream("node-agg-out", 2);
  const rows = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ k: `key-${i % 23}`, n: i, s: "ü✓".repeat(i % 4) }));
  const proc = millrace(["put", "--stream", "node-agg-out", "--key-field", "k"], rows.map((r) => r + "\n").join(""));
  assert.match(proc.stderr, /put 2000 records/);
  const byKey = new Map();
  let aggregated = 0;
  for (const record of await readAll("node-agg-out")) {
    const v2 = {
      partitionKey: record.PartitionKey,
      sequenceNumber: record.SequenceNumber,
      data: Buffer.from(record.Data).toString("base64"),
    };
    agg.deaggregateSync(v2, true, (err, users) => {
      assert.ifError(err);
      if (users.length > 1) aggregated++;
      for (const user of users) {
        const list = byKey.get(user.partitionKey) ?? [];
        list.push(Buffer.from(user.data, "base64").toString("utf8"));
        byKey.set(user.partitionKey, list);
      }
    });
  }
  assert.ok(aggregated > 0);
  const expected = new Map();
  for (const row of rows) {
    const k = JSON.parse(row).k;
    expected.set(k, [...(expected.get(k) ?? []), row]);
  }
  assert.deepEqual(new Map([...byKey].sort()), new Map([...expected].sort()));
});

test("millrace tail de-aggregates what aws-kinesis-agg aggregated", async () => {
  await createStream("node-agg-in", 1);
  const records = Array.from({ length: 1500 }, (_, i) => ({ partitionKey: `pk-${i % 9}`, data: randomBytes(1 + (i % 200)) }));
  const encoded = [];
  await new Promise((resolve, reject) => {
    agg.aggregate(
      records.map((r) => ({ ...r })),
      (e, done) => {
        encoded.push(e);
        done();
      },
      resolve,
      reject,
    );
  });
  for (const e of encoded) {
    await client.send(
      new PutRecordCommand({
        StreamName: "node-agg-in",
        PartitionKey: e.partitionKey,
        Data: e.data,
        ...(e.explicitHashKey ? { ExplicitHashKey: e.explicitHashKey } : {}),
      }),
    );
  }
  const proc = millrace(["tail", "node-agg-in", "--from", "trim-horizon", "--format", "hex"]);
  assert.deepEqual(proc.stdout.split("\n").filter(Boolean), records.map((r) => r.data.toString("hex")));
  const json = millrace(["tail", "node-agg-in", "--from", "trim-horizon", "--format", "json"]);
  const keys = json.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l).PartitionKey);
  assert.deepEqual(keys, records.map((r) => r.partitionKey));
});
