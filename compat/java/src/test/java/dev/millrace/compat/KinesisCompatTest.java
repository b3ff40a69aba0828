package dev.millrace.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.core.retry.RetryMode;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.ChildShard;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.InvalidArgumentException;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;
import software.amazon.awssdk.services.kinesis.model.Record;
import software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;
import software.amazon.awssdk.services.kinesis.model.StreamStatus;
import software.amazon.awssdk.services.kinesis.model.SubscribeToShardEvent;
import software.amazon.awssdk.services.kinesis.model.SubscribeToShardResponseHandler;

/**
 * The AWS SDK for Java v2 (CBOR by default, as it speaks to Kinesis) against the real millrace binary:
 * each test starts {@code millrace serve} on 127.0.0.1:0 with a fresh data directory and stops it.
 */
class KinesisCompatTest {
  private static final String ACCOUNT = "000000000000";
  private Process server;
  private URI endpoint;

  private static String binary() {
    String bin = System.getenv("MILLRACE_BIN");
    if (bin != null && !bin.isEmpty()) {
      return bin;
    }
    String target = System.getenv("CARGO_TARGET_DIR");
    return Path.of(target != null ? target : "../../target", "debug", "millrace").toString();
  }

  private void start(String... extra) throws Exception {
    Path data = Files.createTempDirectory("millrace-java");
    List<String> command = new ArrayList<>(List.of(binary(), "serve", "--listen", "127.0.0.1:0",
        "--data-dir", data.toString()));
    if (!List.of(extra).contains("--throughput-limits")) {
      command.addAll(List.of("--throughput-limits", "off"));
    }
    command.addAll(List.of(extra));
    server = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
    String line = out.readLine();
    assertNotNull(line, "server printed nothing");
    assertTrue(line.startsWith("listening on "), line);
    endpoint = URI.create(line.substring("listening on ".length()).trim());
  }

  @AfterEach
  void stop() throws Exception {
    if (server != null) {
      server.destroyForcibly();
      server.waitFor(10, TimeUnit.SECONDS);
    }
  }

  private KinesisClient client() {
    return KinesisClient.builder()
        .endpointOverride(endpoint)
        .region(Region.US_EAST_1)
        .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDJAVATEST", "java-secret")))
        .overrideConfiguration(c -> c.retryStrategy(RetryMode.STANDARD))
        .build();
  }

  private KinesisAsyncClient asyncClient() {
    return KinesisAsyncClient.builder()
        .endpointOverride(endpoint)
        .region(Region.US_EAST_1)
        .credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDJAVATEST", "java-secret")))
        .httpClientBuilder(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP2))
        .build();
  }

  private static String createStream(KinesisClient kinesis, String name, int shards) throws Exception {
    kinesis.createStream(b -> b.streamName(name).shardCount(shards));
    Instant deadline = Instant.now().plusSeconds(30);
    while (true) {
      var summary = kinesis.describeStreamSummary(b -> b.streamName(name)).streamDescriptionSummary();
      if (summary.streamStatus() == StreamStatus.ACTIVE) {
        return summary.streamARN();
      }
      assertTrue(Instant.now().isBefore(deadline), "stream never became ACTIVE");
      Thread.sleep(50);
    }
  }

  private static List<Record> readAll(KinesisClient kinesis, String iterator) {
    List<Record> records = new ArrayList<>();
    for (int empty = 0; iterator != null && empty < 3; ) {
      final String current = iterator;
      GetRecordsResponse out = kinesis.getRecords(b -> b.shardIterator(current));
      records.addAll(out.records());
      if (out.records().isEmpty()) {
        empty++;
        if (out.millisBehindLatest() != null && out.millisBehindLatest() == 0) {
          break;
        }
      }
      iterator = out.nextShardIterator();
    }
    return records;
  }

  @Test
  void roundTripThroughIteratorTypesInCbor() throws Exception {
    start();
    try (KinesisClient kinesis = client()) {
      createStream(kinesis, "java-round-trip", 1);
      List<String> sequences = new ArrayList<>();
      for (int i = 0; i < 10; i++) {
        final int n = i;
        sequences.add(kinesis.putRecord(b -> b.streamName("java-round-trip").partitionKey("k")
            .data(SdkBytes.fromUtf8String("record-" + n))).sequenceNumber());
      }
      String shard = "shardId-000000000000";
      List<Record> all = readAll(kinesis, kinesis.getShardIterator(b -> b.streamName("java-round-trip")
          .shardId(shard).shardIteratorType(ShardIteratorType.TRIM_HORIZON)).shardIterator());
      assertEquals(10, all.size());
      assertEquals("record-9", all.get(9).data().asUtf8String());
      assertEquals(sequences.get(9), all.get(9).sequenceNumber());
      assertNotNull(all.get(0).approximateArrivalTimestamp());
      assertTrue(Duration.between(all.get(0).approximateArrivalTimestamp(), Instant.now()).abs().getSeconds() < 120,
          "arrival timestamps in milliseconds, not a thousand times off");
      List<Record> after = readAll(kinesis, kinesis.getShardIterator(b -> b.streamName("java-round-trip")
          .shardId(shard).shardIteratorType(ShardIteratorType.AFTER_SEQUENCE_NUMBER)
          .startingSequenceNumber(sequences.get(3))).shardIterator());
      assertEquals(6, after.size());
      List<Record> atTime = readAll(kinesis, kinesis.getShardIterator(b -> b.streamName("java-round-trip")
          .shardId(shard).shardIteratorType(ShardIteratorType.AT_TIMESTAMP)
          .timestamp(Instant.now().minusSeconds(3600))).shardIterator());
      assertEquals(10, atTime.size());
    }
  }

  @Test
  void putRecordsPartialFailure() throws Exception {
    start("--throughput-limits", "on");
    try (KinesisClient kinesis = client()) {
      createStream(kinesis, "java-hot", 1);
      List<PutRecordsRequestEntry> entries = new ArrayList<>();
      for (int i = 0; i < 300; i++) {
        entries.add(PutRecordsRequestEntry.builder().partitionKey("k").data(SdkBytes.fromByteArray(new byte[10 * 1024])).build());
      }
      PutRecordsResponse out = kinesis.putRecords(b -> b.streamName("java-hot").records(entries));
      assertTrue(out.failedRecordCount() > 100 && out.failedRecordCount() < 300, "failed " + out.failedRecordCount());
      PutRecordsResultEntry failed = out.records().stream().filter(r -> r.errorCode() != null).findFirst().orElseThrow();
      assertEquals("ProvisionedThroughputExceededException", failed.errorCode());
      assertEquals("Rate exceeded for shard shardId-000000000000 in stream java-hot under account " + ACCOUNT + ".",
          failed.errorMessage());
      assertNull(failed.sequenceNumber());
    }
  }

  @Test
  void splitGivesChildShards() throws Exception {
    start();
    try (KinesisClient kinesis = client()) {
      createStream(kinesis, "java-split", 1);
      kinesis.putRecord(b -> b.streamName("java-split").partitionKey("k").data(SdkBytes.fromUtf8String("before")));
      kinesis.splitShard(b -> b.streamName("java-split").shardToSplit("shardId-000000000000")
          .newStartingHashKey("170141183460469231731687303715884105728"));
      String iterator = kinesis.getShardIterator(b -> b.streamName("java-split").shardId("shardId-000000000000")
          .shardIteratorType(ShardIteratorType.TRIM_HORIZON)).shardIterator();
      List<ChildShard> children = List.of();
      List<String> data = new ArrayList<>();
      while (iterator != null) {
        final String current = iterator;
        GetRecordsResponse out = kinesis.getRecords(b -> b.shardIterator(current));
        out.records().forEach(r -> data.add(r.data().asUtf8String()));
        children = out.childShards();
        iterator = out.nextShardIterator();
      }
      assertEquals(List.of("before"), data);
      assertEquals(2, children.size());
      assertEquals("shardId-000000000001", children.get(0).shardId());
      assertEquals(List.of("shardId-000000000000"), children.get(0).parentShards());
    }
  }

  @Test
  void subscribeToShardWithTwoConsumersOverHttp2() throws Exception {
    start();
    String arn;
    try (KinesisClient kinesis = client()) {
      arn = createStream(kinesis, "java-fanout", 1);
      for (int i = 0; i < 5; i++) {
        final int n = i;
        kinesis.putRecord(b -> b.streamName("java-fanout").partitionKey("k").data(SdkBytes.fromUtf8String("event-" + n)));
      }
      List<String> consumers = new ArrayList<>();
      for (String name : List.of("one", "two")) {
        consumers.add(kinesis.registerStreamConsumer(b -> b.streamARN(arn).consumerName(name)).consumer().consumerARN());
      }
      try (KinesisAsyncClient async = asyncClient()) {
        for (String consumer : consumers) {
          List<String> got = new CopyOnWriteArrayList<>();
          CompletableFuture<Void> done = new CompletableFuture<>();
          SubscribeToShardResponseHandler handler = SubscribeToShardResponseHandler.builder()
              .onError(done::completeExceptionally)
              .subscriber(SubscribeToShardResponseHandler.Visitor.builder()
                  .onSubscribeToShardEvent((SubscribeToShardEvent event) -> {
                    event.records().forEach(r -> got.add(r.data().asUtf8String()));
                    if (got.size() >= 5) {
                      done.complete(null);
                    }
                  })
                  .build())
              .build();
          CompletableFuture<Void> call = async.subscribeToShard(b -> b.consumerARN(consumer)
              .shardId("shardId-000000000000").startingPosition(p -> p.type(ShardIteratorType.TRIM_HORIZON)), handler);
          CompletableFuture.anyOf(done, call).get(60, TimeUnit.SECONDS);
          done.get(60, TimeUnit.SECONDS);
          call.cancel(true);
          assertEquals(List.of("event-0", "event-1", "event-2", "event-3", "event-4"), got.subList(0, 5));
        }
      }
    }
  }

  @Test
  void errorsCarryCodeAndMessage() throws Exception {
    start();
    try (KinesisClient kinesis = client()) {
      ResourceNotFoundException missing = assertThrows(ResourceNotFoundException.class,
          () -> kinesis.describeStreamSummary(b -> b.streamName("java-missing")));
      assertEquals("ResourceNotFoundException", missing.awsErrorDetails().errorCode());
      assertEquals("Stream java-missing under account " + ACCOUNT + " not found.", missing.awsErrorDetails().errorMessage());
      assertEquals(400, missing.statusCode());
      InvalidArgumentException bad = assertThrows(InvalidArgumentException.class,
          () -> kinesis.getRecords(b -> b.shardIterator("AAAAAAAAAAEnotarealiterator")));
      assertEquals("Invalid ShardIterator.", bad.awsErrorDetails().errorMessage());
    }
  }
}
