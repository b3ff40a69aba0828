// Compatibility tests through the AWS SDK for Go v2 against the real millrace binary.
//
// Each test starts `millrace serve` on 127.0.0.1:0 with a fresh data directory (binary: $MILLRACE_BIN,
// else ../../target/debug/millrace) and stops it at the end.
package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

const account = "000000000000"

type server struct {
	cmd      *exec.Cmd
	endpoint string
}

func binary() string {
	if bin := os.Getenv("MILLRACE_BIN"); bin != "" {
		return bin
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		target = filepath.Join("..", "..", "target")
	}
	return filepath.Join(target, "debug", "millrace")
}

func start(t *testing.T, extra ...string) *server {
	t.Helper()
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}
	limits := false
	for _, arg := range extra {
		if arg == "--throughput-limits" {
			limits = true
		}
	}
	if !limits {
		args = append(args, "--throughput-limits", "off")
	}
	cmd := exec.Command(binary(), append(args, extra...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary(), err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		_ = cmd.Process.Kill()
		t.Fatalf("server did not start: %q %v", line, err)
	}
	s := &server{cmd: cmd, endpoint: strings.TrimSpace(strings.TrimPrefix(line, "listening on "))}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return s
}

func (s *server) client() *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDGOTEST", "go-test-secret", ""),
		BaseEndpoint:     aws.String(s.endpoint),
		RetryMaxAttempts: 1,
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func createStream(t *testing.T, c *kinesis.Client, name string, shards int32) string {
	t.Helper()
	if _, err := c.CreateStream(ctx(t), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	waiter := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond })
	if err := waiter.Wait(ctx(t), &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatalf("wait %s: %v", name, err)
	}
	summary, err := c.DescribeStreamSummary(ctx(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return *summary.StreamDescriptionSummary.StreamARN
}

func apiError(t *testing.T, err error) smithy.APIError {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) {
		t.Fatalf("expected an API error, got %v", err)
	}
	return api
}

func readAll(t *testing.T, c *kinesis.Client, iterator *string) []types.Record {
	t.Helper()
	var records []types.Record
	for empty := 0; iterator != nil && empty < 3; {
		out, err := c.GetRecords(ctx(t), &kinesis.GetRecordsInput{ShardIterator: iterator})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Records) == 0 {
			empty++
		}
		records = append(records, out.Records...)
		iterator = out.NextShardIterator
		if out.MillisBehindLatest != nil && *out.MillisBehindLatest == 0 && len(out.Records) == 0 {
			break
		}
	}
	return records
}

func iterator(t *testing.T, c *kinesis.Client, in *kinesis.GetShardIteratorInput) *string {
	t.Helper()
	out, err := c.GetShardIterator(ctx(t), in)
	if err != nil {
		t.Fatalf("GetShardIterator %s: %v", in.ShardIteratorType, err)
	}
	return out.ShardIterator
}

func TestRoundTripThroughEveryIteratorType(t *testing.T) {
	c := start(t).client()
	createStream(t, c, "go-round-trip", 1)
	shard := aws.String("shardId-000000000000")
	var sequences []string
	for i := 0; i < 10; i++ {
		out, err := c.PutRecord(ctx(t), &kinesis.PutRecordInput{
			StreamName: aws.String("go-round-trip"), PartitionKey: aws.String("k"), Data: []byte(fmt.Sprintf("record-%d", i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		sequences = append(sequences, *out.SequenceNumber)
	}
	base := kinesis.GetShardIteratorInput{StreamName: aws.String("go-round-trip"), ShardId: shard}
	check := func(kind types.ShardIteratorType, want int, mutate func(*kinesis.GetShardIteratorInput)) {
		in := base
		in.ShardIteratorType = kind
		if mutate != nil {
			mutate(&in)
		}
		got := readAll(t, c, iterator(t, c, &in))
		if len(got) != want {
			t.Fatalf("%s: %d records, want %d", kind, len(got), want)
		}
		if want > 0 && string(got[len(got)-1].Data) != "record-9" {
			t.Fatalf("%s: last record %q", kind, got[len(got)-1].Data)
		}
	}
	check(types.ShardIteratorTypeTrimHorizon, 10, nil)
	check(types.ShardIteratorTypeAtSequenceNumber, 7, func(in *kinesis.GetShardIteratorInput) { in.StartingSequenceNumber = aws.String(sequences[3]) })
	check(types.ShardIteratorTypeAfterSequenceNumber, 6, func(in *kinesis.GetShardIteratorInput) { in.StartingSequenceNumber = aws.String(sequences[3]) })
	check(types.ShardIteratorTypeAtTimestamp, 10, func(in *kinesis.GetShardIteratorInput) { in.Timestamp = aws.Time(time.Now().Add(-time.Hour)) })
	check(types.ShardIteratorTypeLatest, 0, nil)
}

func TestPutRecordsPartialFailure(t *testing.T) {
	c := start(t, "--throughput-limits", "on").client()
	createStream(t, c, "go-hot", 1)
	entries := make([]types.PutRecordsRequestEntry, 300)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, 10*1024)}
	}
	out, err := c.PutRecords(ctx(t), &kinesis.PutRecordsInput{StreamName: aws.String("go-hot"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	if *out.FailedRecordCount <= 100 || *out.FailedRecordCount >= 300 {
		t.Fatalf("failed %d of 300", *out.FailedRecordCount)
	}
	for _, entry := range out.Records {
		if entry.ErrorCode != nil {
			if *entry.ErrorCode != "ProvisionedThroughputExceededException" || entry.SequenceNumber != nil {
				t.Fatalf("entry %+v", entry)
			}
			want := "Rate exceeded for shard shardId-000000000000 in stream go-hot under account " + account + "."
			if *entry.ErrorMessage != want {
				t.Fatalf("message %q", *entry.ErrorMessage)
			}
			return
		}
	}
	t.Fatal("no failed entry")
}

func TestReshardingEndsTheParentWithChildShards(t *testing.T) {
	c := start(t).client()
	createStream(t, c, "go-split", 1)
	if _, err := c.PutRecord(ctx(t), &kinesis.PutRecordInput{StreamName: aws.String("go-split"), PartitionKey: aws.String("k"), Data: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SplitShard(ctx(t), &kinesis.SplitShardInput{
		StreamName: aws.String("go-split"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	}); err != nil {
		t.Fatal(err)
	}
	it := iterator(t, c, &kinesis.GetShardIteratorInput{StreamName: aws.String("go-split"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	var children []types.ChildShard
	var data []string
	for it != nil {
		out, err := c.GetRecords(ctx(t), &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			data = append(data, string(r.Data))
		}
		children = out.ChildShards
		it = out.NextShardIterator
	}
	if len(data) != 1 || data[0] != "before" {
		t.Fatalf("parent records %v", data)
	}
	if len(children) != 2 || *children[0].ShardId != "shardId-000000000001" || *children[1].ShardId != "shardId-000000000002" {
		t.Fatalf("children %+v", children)
	}
	if children[0].ParentShards[0] != "shardId-000000000000" {
		t.Fatalf("parents %+v", children[0].ParentShards)
	}
}

func TestSubscribeToShardWithTwoConsumers(t *testing.T) {
	c := start(t).client()
	arn := createStream(t, c, "go-fanout", 1)
	var consumers []string
	for _, name := range []string{"one", "two"} {
		out, err := c.RegisterStreamConsumer(ctx(t), &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, *out.Consumer.ConsumerARN)
	}
	for i := 0; i < 5; i++ {
		if _, err := c.PutRecord(ctx(t), &kinesis.PutRecordInput{StreamName: aws.String("go-fanout"), PartitionKey: aws.String("k"), Data: []byte(fmt.Sprintf("event-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, consumer := range consumers {
		out, err := c.SubscribeToShard(ctx(t), &kinesis.SubscribeToShardInput{
			ConsumerARN: aws.String(consumer), ShardId: aws.String("shardId-000000000000"),
			StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
		})
		if err != nil {
			t.Fatalf("subscribe %s: %v", consumer, err)
		}
		stream := out.GetStream()
		var got []string
		for event := range stream.Events() {
			if e, ok := event.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				for _, r := range e.Value.Records {
					got = append(got, string(r.Data))
				}
				if len(got) >= 5 {
					break
				}
			}
		}
		_ = stream.Close()
		if err := stream.Err(); err != nil {
			t.Fatalf("stream %s: %v", consumer, err)
		}
		if len(got) != 5 || got[0] != "event-0" || got[4] != "event-4" {
			t.Fatalf("consumer %s got %v", consumer, got)
		}
	}
}

func TestErrorsCarryCodeAndMessage(t *testing.T) {
	c := start(t).client()
	_, err := c.DescribeStreamSummary(ctx(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("go-missing")})
	api := apiError(t, err)
	if api.ErrorCode() != "ResourceNotFoundException" || api.ErrorMessage() != "Stream go-missing under account "+account+" not found." {
		t.Fatalf("%s: %s", api.ErrorCode(), api.ErrorMessage())
	}
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("not a modelled ResourceNotFoundException: %T", err)
	}
	createStream(t, c, "go-errors", 1)
	_, err = c.GetShardIterator(ctx(t), &kinesis.GetShardIteratorInput{
		StreamName: aws.String("go-errors"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber,
	})
	api = apiError(t, err)
	if api.ErrorCode() != "InvalidArgumentException" {
		t.Fatalf("%s: %s", api.ErrorCode(), api.ErrorMessage())
	}
	_, err = c.IncreaseStreamRetentionPeriod(ctx(t), &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("go-errors"), RetentionPeriodHours: aws.Int32(10000)})
	api = apiError(t, err)
	if api.ErrorCode() != "InvalidArgumentException" && api.ErrorCode() != "ValidationException" {
		t.Fatalf("%s: %s", api.ErrorCode(), api.ErrorMessage())
	}
	_, err = c.GetRecords(ctx(t), &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAEnotarealiterator")})
	api = apiError(t, err)
	if api.ErrorCode() != "InvalidArgumentException" || api.ErrorMessage() != "Invalid ShardIterator." {
		t.Fatalf("%s: %s", api.ErrorCode(), api.ErrorMessage())
	}
}
