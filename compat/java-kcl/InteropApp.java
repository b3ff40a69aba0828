import java.net.URI;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.coordinator.CoordinatorConfig;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.lifecycle.events.*;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.processor.ShardRecordProcessorFactory;
import software.amazon.kinesis.retrieval.KinesisClientRecord;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * A small Java KCL 3.x consumer pointed at Millrace (compat/python/test_java_kcl.py): prints every
 * record, checkpoints each batch. Arguments: endpoint, stream, application, worker id, and
 * optionally "2x" for the mode compatible with KCL 2.x workers (how it shares a lease table with
 * `millrace kcl` workers, which take and steal leases as KCL 2.x does).
 */
public class InteropApp {
    static class Processor implements ShardRecordProcessor {
        private String shard;
        public void initialize(InitializationInput input) { shard = input.shardId(); System.out.println("JAVA initialize " + shard); }
        public void processRecords(ProcessRecordsInput input) {
            for (KinesisClientRecord r : input.records()) {
                System.out.println("JAVA record " + shard + " " + r.partitionKey() + " " + r.sequenceNumber());
                System.out.flush();
            }
            try { if (!input.records().isEmpty()) input.checkpointer().checkpoint(); } catch (Exception e) { System.out.println("JAVA checkpoint error " + e); }
        }
        public void leaseLost(LeaseLostInput input) { System.out.println("JAVA lease lost " + shard); }
        public void shardEnded(ShardEndedInput input) {
            try { input.checkpointer().checkpoint(); System.out.println("JAVA shard ended " + shard); } catch (Exception e) { System.out.println("JAVA checkpoint error " + e); }
        }
        public void shutdownRequested(ShutdownRequestedInput input) {
            try { input.checkpointer().checkpoint(); } catch (Exception e) { System.out.println("JAVA checkpoint error " + e); }
        }
    }

    public static void main(String[] args) throws Exception {
        URI endpoint = URI.create(args[0]);
        String stream = args[1], application = args[2], worker = args[3];
        boolean compatible = args.length > 4 && args[4].equals("2x");
        Region region = Region.US_EAST_1;
        StaticCredentialsProvider credentials = StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDTEST", "secret"));
        KinesisAsyncClient kinesis = KinesisAsyncClient.builder().endpointOverride(endpoint).region(region)
            .credentialsProvider(credentials)
            .httpClientBuilder(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1)).build();
        DynamoDbAsyncClient dynamo = DynamoDbAsyncClient.builder().endpointOverride(endpoint).region(region)
            .credentialsProvider(credentials).build();
        CloudWatchAsyncClient cloudWatch = CloudWatchAsyncClient.builder().endpointOverride(endpoint).region(region)
            .credentialsProvider(credentials).build();
        ShardRecordProcessorFactory factory = Processor::new;
        ConfigsBuilder configs = new ConfigsBuilder(stream, application, kinesis, dynamo, cloudWatch, worker, factory);
        Scheduler scheduler = new Scheduler(
            configs.checkpointConfig(),
            compatible
                ? configs.coordinatorConfig().clientVersionConfig(
                    CoordinatorConfig.ClientVersionConfig.CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X)
                : configs.coordinatorConfig(),
            configs.leaseManagementConfig().failoverTimeMillis(2000),
            configs.lifecycleConfig(),
            configs.metricsConfig().metricsFactory(new NullMetricsFactory()),
            configs.processorConfig(),
            configs.retrievalConfig()
                .retrievalSpecificConfig(new PollingConfig(stream, kinesis))
                .initialPositionInStreamExtended(InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.TRIM_HORIZON)));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try { scheduler.startGracefulShutdown().get(); } catch (Exception e) { System.out.println("JAVA shutdown error " + e); }
        }));
        scheduler.run();
    }
}
