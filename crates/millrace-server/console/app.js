// The Millrace console: a small single-page app over the same API the SDKs use, every call signed with
// the signed-in access key (sessionStorage), so it sees exactly what that identity may see.
import { callAws } from "/console/sigv4.js";

const main = document.getElementById("main");
const region = "us-east-1";

function credentials() {
  return {
    accessKeyId: sessionStorage.getItem("millrace.key") || "console",
    secretAccessKey: sessionStorage.getItem("millrace.secret") || "console",
  };
}

function kinesis(op, input) {
  return callAws({ endpoint: location.origin, region: sessionStorage.getItem("millrace.region") || region,
    service: "kinesis", target: `Kinesis_20131202.${op}`, version: "1.1", input, credentials: credentials() });
}

function cloudwatch(op, input) {
  return callAws({ endpoint: location.origin, region: sessionStorage.getItem("millrace.region") || region,
    service: "monitoring", target: `GraniteServiceVersion20100801.${op}`, version: "1.0", input,
    credentials: credentials() });
}

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** A sparkline of values as an inline SVG polyline. */
function sparkline(values, width = 160, height = 28) {
  if (!values.length) return `<svg class="spark" width="${width}" height="${height}" data-points="0"></svg>`;
  const max = Math.max(...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / max) * (height - 2) - 1).toFixed(1)}`);
  return `<svg class="spark" width="${width}" height="${height}" data-points="${values.length}">` +
    `<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="${points.join(" ")}"/></svg>`;
}

async function series(metric, dimensions, stat = "Sum", minutes = 30) {
  const end = Date.now() / 1000 + 60;
  const out = await cloudwatch("GetMetricData", {
    StartTime: end - minutes * 60, EndTime: end, ScanBy: "TimestampAscending",
    MetricDataQueries: [{ Id: "m", MetricStat: { Metric: { Namespace: "AWS/Kinesis", MetricName: metric,
      Dimensions: Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value })) }, Period: 60, Stat: stat } },
      { Id: "filled", Expression: "FILL(m, 0)" }],
  });
  const filled = out.MetricDataResults.find((r) => r.Id === "filled");
  return filled ? filled.Values : [];
}

async function streamsPage() {
  const names = (await kinesis("ListStreams", {})).StreamNames;
  const rows = [];
  for (const name of names) {
    const s = (await kinesis("DescribeStreamSummary", { StreamName: name })).StreamDescriptionSummary;
    const rate = await series("IncomingRecords", { StreamName: name }).catch(() => []);
    rows.push(`<tr data-stream="${esc(name)}"><td><a href="#/stream/${encodeURIComponent(name)}">${esc(name)}</a></td>` +
      `<td>${esc(s.StreamModeDetails.StreamMode)}</td><td>${esc(s.StreamStatus)}</td><td>${s.OpenShardCount}</td>` +
      `<td>${s.RetentionPeriodHours} h</td><td>${esc(s.EncryptionType || "NONE")}</td><td>${sparkline(rate)}</td></tr>`);
  }
  main.innerHTML = `<h1>Streams</h1>
    <form id="create"><input name="name" placeholder="stream name" required>
    <input name="shards" type="number" min="1" value="1"> <button>Create stream</button></form>
    <table id="streams"><tr><th>name</th><th>mode</th><th>status</th><th>open shards</th><th>retention</th>
    <th>encryption</th><th>incoming records (30 min)</th></tr>${rows.join("")}</table>`;
  document.getElementById("create").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    await run(() => kinesis("CreateStream", { StreamName: form.get("name"), ShardCount: Number(form.get("shards")) }));
    setTimeout(route, 300);
  };
}

/** The shards' hash-key ranges on the 128-bit key space. */
function keyspace(shards) {
  const full = 2n ** 128n;
  const width = 600;
  const bars = shards.map((s, i) => {
    const start = BigInt(s.HashKeyRange.StartingHashKey);
    const end = BigInt(s.HashKeyRange.EndingHashKey) + 1n;
    const x = Number((start * BigInt(width)) / full);
    const w = Math.max(1, Number(((end - start) * BigInt(width)) / full));
    const closed = s.SequenceNumberRange.EndingSequenceNumber ? "closed" : "";
    return `<rect class="${closed}" x="${x}" y="${i * 14}" width="${w}" height="12"><title>${esc(s.ShardId)}</title></rect>`;
  });
  return `<svg class="keyspace" width="${width}" height="${shards.length * 14}">${bars.join("")}</svg>`;
}

/**
 * The user records of a KPL-aggregated record (magic F3 89 9A C2, protobuf AggregatedRecord, 16-byte
 * MD5 trailer, which is not checked here), or null when `bytes` is not one.
 */
export function deaggregate(bytes) {
  const magic = [0xf3, 0x89, 0x9a, 0xc2];
  if (bytes.length < 20 || magic.some((b, i) => bytes[i] !== b)) return null;
  const body = bytes.subarray(4, bytes.length - 16);
  const fields = (buf) => {
    const out = [];
    let at = 0;
    const varint = () => {
      let value = 0n;
      for (let shift = 0n; ; shift += 7n) {
        if (at >= buf.length || shift > 63n) throw new Error("bad varint");
        const byte = buf[at++];
        value |= BigInt(byte & 0x7f) << shift;
        if (!(byte & 0x80)) return value;
      }
    };
    while (at < buf.length) {
      const key = Number(varint());
      const type = key & 7;
      if (type === 0) out.push([key >> 3, varint()]);
      else if (type === 2) {
        const length = Number(varint());
        if (at + length > buf.length) throw new Error("bad length");
        out.push([key >> 3, buf.subarray(at, at + length)]);
        at += length;
      } else throw new Error("unexpected wire type");
    }
    return out;
  };
  try {
    const text = new TextDecoder();
    const keys = [];
    const records = [];
    for (const [field, value] of fields(body)) {
      if (field === 1) keys.push(text.decode(value));
      if (field === 3) {
        const record = { keyIndex: 0, data: new Uint8Array() };
        for (const [f, v] of fields(value)) {
          if (f === 1) record.keyIndex = Number(v);
          if (f === 3) record.data = v;
        }
        records.push(record);
      }
    }
    // The key table may follow the records in the encoding: resolve indices once all are read.
    const resolved = records.map((r) => ({ key: keys[r.keyIndex] ?? "", data: r.data }));
    return resolved.length ? resolved : null;
  } catch {
    return null;
  }
}

function render(bytes, mode) {
  if (mode === "hex") return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder().decode(bytes);
  if (mode === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
  }
  return text;
}

function show(data, mode) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const users = deaggregate(bytes);
  if (users) {
    return `KPL aggregate of ${users.length} records:\n` +
      users.map((u, i) => `[${i}] ${u.key}: ${render(u.data, mode)}`).join("\n");
  }
  if (mode === "hex") return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder().decode(bytes);
  if (mode === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
  }
  return text;
}

async function streamPage(name) {
  const shards = (await kinesis("ListShards", { StreamName: name })).Shards;
  const summary = (await kinesis("DescribeStreamSummary", { StreamName: name })).StreamDescriptionSummary;
  const consumers = (await kinesis("ListStreamConsumers", { StreamARN: summary.StreamARN })).Consumers || [];
  const rows = [];
  const open = shards.filter((s) => !s.SequenceNumberRange.EndingSequenceNumber);
  for (const s of shards) {
    const closed = Boolean(s.SequenceNumberRange.EndingSequenceNumber);
    // Per-shard charts exist once EnableEnhancedMonitoring turned the shard-level metrics on.
    const dims = { StreamName: name, ShardId: s.ShardId };
    const incoming = await series("IncomingBytes", dims).catch(() => []);
    const throttled = await series("WriteProvisionedThroughputExceeded", dims).catch(() => []);
    // The open shard whose range starts right after this one's: the one MergeShards accepts.
    const after = (BigInt(s.HashKeyRange.EndingHashKey) + 1n).toString();
    const next = open.find((o) => o.HashKeyRange.StartingHashKey === after);
    const actions = closed ? "" : `<button data-split="${esc(s.ShardId)}">split</button>` +
      (next ? ` <button data-merge="${esc(s.ShardId)}" data-with="${esc(next.ShardId)}">merge with next</button>` : "");
    rows.push(`<tr data-shard="${esc(s.ShardId)}"><td>${esc(s.ShardId)}</td><td>${esc(s.ParentShardId || "")}` +
      `${s.AdjacentParentShardId ? ", " + esc(s.AdjacentParentShardId) : ""}</td>` +
      `<td>${closed ? "closed" : "open"}</td>` +
      `<td><code>${esc(s.HashKeyRange.StartingHashKey)}–${esc(s.HashKeyRange.EndingHashKey)}</code></td>` +
      `<td>${sparkline(incoming, 100)}</td><td>${sparkline(throttled, 100)}</td><td>${actions}</td></tr>`);
  }
  const consumerRows = [];
  for (const c of consumers) {
    const behind = await series("SubscribeToShardEvent.MillisBehindLatest",
      { StreamName: name, ConsumerName: c.ConsumerName }, "Maximum").catch(() => []);
    consumerRows.push(`<tr data-consumer="${esc(c.ConsumerName)}"><td>${esc(c.ConsumerName)}</td>` +
      `<td>${esc(c.ConsumerStatus)}</td><td>${sparkline(behind)}</td></tr>`);
  }
  const lag = await series("GetRecords.IteratorAgeMilliseconds", { StreamName: name }, "Maximum").catch(() => []);
  main.innerHTML = `<h1>${esc(name)}</h1>
    <p>${esc(summary.StreamStatus)}, ${esc(summary.StreamModeDetails.StreamMode)}, retention ${summary.RetentionPeriodHours} h</p>
    ${keyspace(shards)}
    <table id="shards"><tr><th>shard</th><th>parents</th><th>state</th><th>hash keys</th>
    <th>incoming bytes (shard level)</th><th>write throttles (shard level)</th><th></th></tr>${rows.join("")}</table>
    <h2>Consumer lag (GetRecords.IteratorAgeMilliseconds, maximum)</h2><div id="lag">${sparkline(lag, 400, 60)}</div>
    <h2>Consumers</h2><table id="consumers"><tr><th>consumer</th><th>status</th>
    <th>MillisBehindLatest (maximum per minute)</th></tr>${consumerRows.join("")}</table>
    <h2>Put a test record</h2>
    <form id="put"><input name="key" placeholder="partition key" value="console" required>
    <input name="data" placeholder="data" required size="40"> <button>Put record</button></form>
    <p id="put-result"></p>
    <h2>Records</h2>
    <form id="browse"><select name="shard">${shards.map((s) => `<option>${esc(s.ShardId)}</option>`).join("")}</select>
    <select name="type"><option>TRIM_HORIZON</option><option>LATEST</option><option>AT_SEQUENCE_NUMBER</option>
    <option>AT_TIMESTAMP</option></select><input name="at" placeholder="sequence number or ISO time">
    <select name="mode"><option value="text">UTF-8</option><option value="json">JSON</option><option value="hex">hex</option></select>
    <button>Read</button></form><div id="records"></div>
    <h2>Reshard</h2><form id="scale"><input name="count" type="number" min="1" value="${summary.OpenShardCount * 2}">
    <button>Update shard count</button></form>
    <button id="delete">Delete stream</button>`;
  document.getElementById("put").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const data = btoa(String.fromCharCode(...new TextEncoder().encode(form.get("data"))));
    const out = await run(() => kinesis("PutRecord", { StreamName: name, PartitionKey: form.get("key"), Data: data }));
    if (out) {
      const result = document.getElementById("put-result");
      result.dataset.shard = out.ShardId;
      result.textContent = `Put to ${out.ShardId} as ${out.SequenceNumber}`;
    }
  };
  document.getElementById("browse").onsubmit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const input = { StreamName: name, ShardId: form.get("shard"), ShardIteratorType: form.get("type") };
    if (form.get("type") === "AT_SEQUENCE_NUMBER") input.StartingSequenceNumber = form.get("at");
    if (form.get("type") === "AT_TIMESTAMP") input.Timestamp = Date.parse(form.get("at")) / 1000;
    await run(async () => {
      const iterator = (await kinesis("GetShardIterator", input)).ShardIterator;
      const out = await kinesis("GetRecords", { ShardIterator: iterator, Limit: 100 });
      document.getElementById("records").innerHTML = `<table id="record-table"><tr><th>sequence number</th><th>key</th>
        <th>arrival</th><th>data</th></tr>${out.Records.map((r) => `<tr><td><code>${esc(r.SequenceNumber)}</code></td>
        <td>${esc(r.PartitionKey)}</td><td>${new Date(r.ApproximateArrivalTimestamp * 1000).toISOString()}</td>
        <td><pre>${esc(show(r.Data, form.get("mode")))}</pre></td></tr>`).join("")}</table>`;
    });
  };
  document.getElementById("scale").onsubmit = async (event) => {
    event.preventDefault();
    const count = Number(new FormData(event.target).get("count"));
    await run(() => kinesis("UpdateShardCount", { StreamName: name, TargetShardCount: count, ScalingType: "UNIFORM_SCALING" }));
  };
  for (const button of main.querySelectorAll("button[data-split]")) {
    button.onclick = async () => {
      const shard = shards.find((s) => s.ShardId === button.dataset.split);
      const start = BigInt(shard.HashKeyRange.StartingHashKey);
      const middle = start + (BigInt(shard.HashKeyRange.EndingHashKey) - start + 1n) / 2n;
      await run(() => kinesis("SplitShard", { StreamName: name, ShardToSplit: shard.ShardId, NewStartingHashKey: middle.toString() }));
      setTimeout(route, 300);
    };
  }
  for (const button of main.querySelectorAll("button[data-merge]")) {
    button.onclick = async () => {
      await run(() => kinesis("MergeShards", { StreamName: name, ShardToMerge: button.dataset.merge,
        AdjacentShardToMerge: button.dataset.with }));
      setTimeout(route, 300);
    };
  }
  document.getElementById("delete").onclick = async () => {
    await run(() => kinesis("DeleteStream", { StreamName: name }));
    location.hash = "#/streams";
  };
}

async function alarmsPage() {
  const alarms = (await cloudwatch("DescribeAlarms", {})).MetricAlarms;
  main.innerHTML = `<h1>Alarms</h1><table id="alarms"><tr><th>name</th><th>state</th><th>metric</th><th>reason</th></tr>
    ${alarms.map((a) => `<tr><td>${esc(a.AlarmName)}</td><td class="${esc(a.StateValue)}">${esc(a.StateValue)}</td>
    <td>${esc(a.Namespace || "math")} ${esc(a.MetricName || "")}</td><td>${esc(a.StateReason || "")}</td></tr>`).join("")}</table>`;
}

function signinPage() {
  main.innerHTML = `<h1>Sign in</h1><p>With an access key pair (any pair in <code>--auth open</code>).</p>
    <form id="signin"><input name="key" placeholder="access key id" required>
    <input name="secret" type="password" placeholder="secret access key" required>
    <input name="region" value="${esc(sessionStorage.getItem("millrace.region") || region)}"> <button>Sign in</button></form>`;
  document.getElementById("signin").onsubmit = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    sessionStorage.setItem("millrace.key", form.get("key"));
    sessionStorage.setItem("millrace.secret", form.get("secret"));
    sessionStorage.setItem("millrace.region", form.get("region"));
    location.hash = "#/streams";
  };
}

async function run(action) {
  try {
    return await action();
  } catch (error) {
    const note = document.createElement("p");
    note.className = "error";
    note.textContent = error.message;
    main.prepend(note);
    return undefined;
  }
}

async function route() {
  document.getElementById("who").textContent = sessionStorage.getItem("millrace.key") || "not signed in";
  const hash = location.hash || "#/streams";
  main.textContent = "Loading…";
  await run(async () => {
    if (hash.startsWith("#/stream/")) return streamPage(decodeURIComponent(hash.slice(9)));
    if (hash === "#/alarms") return alarmsPage();
    if (hash === "#/signin") return signinPage();
    return streamsPage();
  });
}

window.addEventListener("hashchange", route);
route();
