// Enhanced fan-out through @aws-sdk/client-kinesis: RegisterStreamConsumer, then SubscribeToShard read with
// `for await (const event of response.EventStream)`. The SDK's default request handler for Kinesis is
// NodeHttp2Handler (HTTP/2, prior knowledge on http://); the same flow also runs over HTTP/1.1.
// Run: cd compat/node && node --test

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  KinesisClient,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  RegisterStreamConsumerCommand,
  DescribeStreamConsumerCommand,
  SubscribeToShardCommand,
  PutRecordsCommand,
  PutRecordCommand,
  SplitShardCommand,
  ListShardsCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler, NodeHttp2Handler } from "@smithy/node-http-handler";
import { startServer, CREDENTIALS, sleep } from "./millrace-server.mjs";

let server;
let client; // SDK default: HTTP/2
let clientHttp1;

before(async () => {
  server = await startServer(["--register-consumer-ms", "200", "--subscription-ms", "20000"], "millrace-node-efo-");
  const common = { endpoint: server.endpoint, region: "us-east-1", credentials: CREDENTIALS, maxAttempts: 1 };
  client = new KinesisClient(common);
  clientHttp1 = new KinesisClient({ ...common, requestHandler: new NodeHttpHandler() });
});

after(async () => {
  client?.destroy();
  clientHttp1?.destroy();
  if (server) await server.stop();
});

async function waitActive(client, name) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary.StreamStatus === "ACTIVE") return out.StreamDescriptionSummary;
    if (Date.now() > deadline) throw new Error(`stream ${name} not ACTIVE after 30 s`);
    await sleep(50);
  }
}

async function registerActiveConsumer(client, streamArn, name) {
  const reg = await client.send(new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: name }));
  assert.equal(reg.Consumer.ConsumerStatus, "CREATING");
  assert.equal(reg.Consumer.ConsumerName, name);
  assert.ok(reg.Consumer.ConsumerARN.startsWith(`${streamArn}/consumer/${name}:`), reg.Consumer.ConsumerARN);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const d = await client.send(new DescribeStreamConsumerCommand({ ConsumerARN: reg.Consumer.ConsumerARN }));
    if (d.ConsumerDescription.ConsumerStatus === "ACTIVE") return reg.Consumer.ConsumerARN;
    if (Date.now() > deadline) throw new Error(`consumer ${name} not ACTIVE after 30 s`);
    await sleep(50);
  }
}

async function createStream(client, name, shards) {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  return (await waitActive(client, name)).StreamARN;
}

function sameBytes(a, b) {
  return Buffer.from(a ?? new Uint8Array(0)).equals(Buffer.from(b ?? new Uint8Array(0)));
}

async function subscribeAndReceive(client, stream) {
  const streamArn = await createStream(client, stream, 1);
  const consumerArn = await registerActiveConsumer(client, streamArn, `${stream}-consumer`);
  const shardId = "shardId-000000000000";

  // Breaking out of `for await` does not close the response; aborting the request does.
  const abort = new AbortController();
  const response = await client.send(
    new SubscribeToShardCommand({ ConsumerARN: consumerArn, ShardId: shardId, StartingPosition: { Type: "LATEST" } }),
    { abortSignal: abort.signal },
  );
  assert.equal(response.$metadata.httpStatusCode, 200);

  const expected = []; // {seq, pk, data} in acknowledgement order
  let producing;
  const got = [];
  let events = 0;
  const deadline = Date.now() + 30_000;
  for await (const event of response.EventStream) {
    assert.ok(event.SubscribeToShardEvent, `unexpected event ${JSON.stringify(Object.keys(event))}`);
    const e = event.SubscribeToShardEvent;
    events += 1;
    assert.ok(Array.isArray(e.Records));
    assert.equal(typeof e.MillisBehindLatest, "number");
    assert.ok(e.ContinuationSequenceNumber, "an open shard's events carry ContinuationSequenceNumber");
    assert.equal(e.ChildShards, undefined);
    if (e.Records.length) {
      assert.equal(e.ContinuationSequenceNumber, e.Records.at(-1).SequenceNumber);
    }
    got.push(...e.Records);
    // Write only once the subscription is live (LATEST): the first event says it is.
    if (!producing) {
      producing = (async () => {
        for (let batch = 0; batch < 4; batch++) {
          const entries = Array.from({ length: 25 }, (_, i) => ({
            PartitionKey: `pk-${batch}-${i}`,
            Data: new Uint8Array(randomBytes((batch * 25 + i) * 13)),
          }));
          const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
          assert.equal(out.FailedRecordCount ?? 0, 0);
          out.Records.forEach((r, i) =>
            expected.push({ seq: r.SequenceNumber, pk: entries[i].PartitionKey, data: entries[i].Data }),
          );
        }
        const single = await client.send(
          new PutRecordCommand({ StreamName: stream, PartitionKey: "last", Data: Uint8Array.of(0, 255, 1) }),
        );
        expected.push({ seq: single.SequenceNumber, pk: "last", data: Uint8Array.of(0, 255, 1) });
      })();
    }
    if (expected.length === 101 && got.length >= expected.length) break;
    if (Date.now() > deadline) break;
  }
  abort.abort();
  await producing;
  assert.ok(events >= 2, `only ${events} events`);
  assert.equal(got.length, expected.length, `received ${got.length} of ${expected.length} records`);
  got.forEach((r, i) => {
    assert.equal(r.SequenceNumber, expected[i].seq, `record ${i}: sequence number`);
    assert.equal(r.PartitionKey, expected[i].pk, `record ${i}: partition key`);
    assert.ok(sameBytes(r.Data, expected[i].data), `record ${i}: data differs`);
    assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
  });
  return { consumerArn, streamArn };
}

test("the default client is the HTTP/2 handler", () => {
  assert.ok(client.config.requestHandler instanceof NodeHttp2Handler, String(client.config.requestHandler));
});

test("SDK default (HTTP/2): SubscribeToShard delivers records in order via for await", async () => {
  await subscribeAndReceive(client, "node-efo-h2");
});

test("HTTP/1.1: SubscribeToShard delivers records in order via for await", async () => {
  await subscribeAndReceive(clientHttp1, "node-efo-h1");
});

test("SDK default (HTTP/2): a split ends the subscription with ChildShards and no ContinuationSequenceNumber", async () => {
  const stream = "node-efo-split";
  const streamArn = await createStream(client, stream, 1);
  const consumerArn = await registerActiveConsumer(client, streamArn, "split-consumer");
  const put = await client.send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: Array.from({ length: 10 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Uint8Array.of(i) })),
    }),
  );
  assert.equal(put.FailedRecordCount ?? 0, 0);
  const response = await client.send(
    new SubscribeToShardCommand({
      ConsumerARN: consumerArn,
      ShardId: "shardId-000000000000",
      StartingPosition: { Type: "TRIM_HORIZON" },
    }),
  );
  const got = [];
  const final = [];
  let split = false;
  for await (const event of response.EventStream) {
    const e = event.SubscribeToShardEvent;
    assert.ok(e, JSON.stringify(Object.keys(event)));
    if (e.ChildShards?.length) {
      final.push(e);
      continue; // the stream must end by itself after this event
    }
    assert.equal(final.length, 0, "no event may follow the ChildShards event");
    got.push(...e.Records);
    if (got.length >= 10 && !split) {
      split = true;
      await client.send(
        new SplitShardCommand({
          StreamName: stream,
          ShardToSplit: "shardId-000000000000",
          NewStartingHashKey: (2n ** 127n).toString(),
        }),
      );
    }
  }
  assert.deepEqual(
    got.map((r) => r.SequenceNumber),
    put.Records.map((r) => r.SequenceNumber),
  );
  assert.equal(final.length, 1);
  const last = final[0];
  assert.equal(last.ContinuationSequenceNumber, undefined);
  assert.deepEqual(last.Records, []);
  await waitActive(client, stream);
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
  const children = shards.filter((s) => s.ParentShardId === "shardId-000000000000");
  assert.deepEqual(
    last.ChildShards.map((c) => ({ id: c.ShardId, parents: c.ParentShards, range: c.HashKeyRange })),
    children.map((s) => ({ id: s.ShardId, parents: [s.ParentShardId], range: s.HashKeyRange })),
  );
});
