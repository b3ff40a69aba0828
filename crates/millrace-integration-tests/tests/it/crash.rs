//! Every acknowledged record survives `kill -9` of the server, byte-identical and in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use millrace_integration_tests::Server;
use rand::{Rng, SeedableRng};

type Acknowledged = Arc<Mutex<BTreeMap<String, Vec<(String, Vec<u8>)>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9() {
    let seed: u64 = std::env::var("MILLRACE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: {seed} (rerun with MILLRACE_TEST_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut server = Server::start(&["--segment-bytes", "65536"]).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("crash")
        .shard_count(8)
        .send()
        .await
        .expect("create");

    let acknowledged: Acknowledged = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4u32 {
        let client = client.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0u32.. {
                let entries: Vec<(String, Vec<u8>)> = (0..20u32)
                    .map(|i| {
                        (
                            format!("{writer}-{i}"),
                            format!("{writer}:{batch}:{i}:").into_bytes().repeat(5),
                        )
                    })
                    .collect();
                let request: Vec<PutRecordsRequestEntry> = entries
                    .iter()
                    .map(|(key, data)| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(key)
                            .data(Blob::new(data.clone()))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let Ok(reply) = client
                    .put_records()
                    .stream_name("crash")
                    .set_records(Some(request))
                    .send()
                    .await
                else {
                    return;
                };
                let mut map = acknowledged.lock().expect("lock");
                for ((_, data), result) in entries.into_iter().zip(reply.records) {
                    if let (Some(shard), Some(sequence)) = (result.shard_id, result.sequence_number)
                    {
                        map.entry(shard).or_default().push((sequence, data));
                    }
                }
            }
        }));
    }
    // Kill at a random moment once writes are flowing (a loaded machine may take a while to
    // acknowledge the first batch).
    let flowing = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().expect("lock").is_empty() && tokio::time::Instant::now() < flowing {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1200))).await;
    server.kill9();
    for writer in writers {
        writer.await.expect("writer ends once the server is gone");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    assert!(
        !acknowledged.is_empty(),
        "some records were acknowledged before the kill"
    );

    // Garbage after the newest segment's valid frames must be cut off at recovery.
    let mut segments: Vec<_> = walk(&server.data_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    if let Some(last) = segments.last() {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(last)
            .expect("open segment");
        file.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 9, 1, 2, 3])
            .expect("append garbage");
    }

    server.restart().expect("restart");
    let client = server.kinesis();
    for (shard, mut records) in acknowledged {
        records.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        let mut iterator = client
            .get_shard_iterator()
            .stream_name("crash")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("iterator");
        let mut stored = Vec::new();
        loop {
            let page = client
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .expect("get records");
            if page.records.is_empty() {
                break;
            }
            stored.extend(
                page.records
                    .into_iter()
                    .map(|r| (r.sequence_number, r.data.into_inner())),
            );
            iterator = page.next_shard_iterator.expect("next");
        }
        let mut previous: Option<&str> = None;
        for (sequence, _) in &stored {
            if let Some(previous) = previous {
                assert!(
                    (previous.len(), previous) < (sequence.len(), sequence.as_str()),
                    "sequence numbers strictly increase"
                );
            }
            previous = Some(sequence);
        }
        let stored_map: BTreeMap<&String, &Vec<u8>> = stored.iter().map(|(s, d)| (s, d)).collect();
        for (sequence, data) in &records {
            assert_eq!(
                stored_map.get(sequence),
                Some(&data),
                "acknowledged record {sequence} on {shard} survives"
            );
        }
    }
    // Writes continue after recovery.
    client
        .put_record()
        .stream_name("crash")
        .partition_key("after")
        .data(Blob::new(b"after".to_vec()))
        .send()
        .await
        .expect("write after restart");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
