//! Leases in the Java KCL's table schema (`leaseKey`, `leaseOwner`, `leaseCounter`,
//! `checkpoint`, `checkpointSubSequenceNumber`, `ownerSwitchesSinceCheckpoint`,
//! `parentShardId`, `childShardIds`, `startingHashKey`, `endingHashKey`, and the two-phase
//! checkpoint's `pendingCheckpoint`, `pendingCheckpointSubSequenceNumber` and
//! `pendingCheckpointState`), and the conditional writes that take, renew, evict, prepare and
//! checkpoint them.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::aws::{AwsClient, AwsError};

/// The checkpoint of a shard that has been read to its end.
pub const SHARD_END: &str = "SHARD_END";

#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub key: String,
    pub owner: Option<String>,
    pub counter: u64,
    pub checkpoint: String,
    pub checkpoint_sub_sequence: u64,
    pub owner_switches: u64,
    pub parents: Vec<String>,
    pub children: Vec<String>,
    pub hash_range: Option<(String, String)>,
    /// A prepared (two-phase) checkpoint: sequence and sub-sequence number.
    pub pending_checkpoint: Option<(String, u64)>,
    /// The application state stored with the prepared checkpoint.
    pub pending_checkpoint_state: Option<Vec<u8>>,
}

fn text(item: &Map<String, Value>, name: &str) -> Option<String> {
    item.get(name)?.get("S")?.as_str().map(str::to_owned)
}

fn number(item: &Map<String, Value>, name: &str) -> Option<u64> {
    item.get(name)?.get("N")?.as_str()?.parse().ok()
}

fn strings(item: &Map<String, Value>, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.get("SS"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Lease {
    pub fn from_item(item: &Map<String, Value>) -> Option<Lease> {
        Some(Lease {
            key: text(item, "leaseKey")?,
            owner: text(item, "leaseOwner"),
            counter: number(item, "leaseCounter").unwrap_or(0),
            checkpoint: text(item, "checkpoint").unwrap_or_else(|| "TRIM_HORIZON".into()),
            checkpoint_sub_sequence: number(item, "checkpointSubSequenceNumber").unwrap_or(0),
            owner_switches: number(item, "ownerSwitchesSinceCheckpoint").unwrap_or(0),
            parents: strings(item, "parentShardId"),
            children: strings(item, "childShardIds"),
            hash_range: text(item, "startingHashKey").zip(text(item, "endingHashKey")),
            pending_checkpoint: text(item, "pendingCheckpoint")
                .filter(|s| !s.is_empty())
                .map(|s| {
                    (
                        s,
                        number(item, "pendingCheckpointSubSequenceNumber").unwrap_or(0),
                    )
                }),
            pending_checkpoint_state: item
                .get("pendingCheckpointState")
                .and_then(|v| v.get("B"))
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()),
        })
    }

    fn to_item(&self) -> Value {
        let mut item = json!({
            "leaseKey": {"S": self.key},
            "leaseCounter": {"N": self.counter.to_string()},
            "checkpoint": {"S": self.checkpoint},
            "checkpointSubSequenceNumber": {"N": self.checkpoint_sub_sequence.to_string()},
            "ownerSwitchesSinceCheckpoint": {"N": self.owner_switches.to_string()},
        });
        if let Some(owner) = &self.owner {
            item["leaseOwner"] = json!({"S": owner});
        }
        if !self.parents.is_empty() {
            item["parentShardId"] = json!({"SS": self.parents});
        }
        if !self.children.is_empty() {
            item["childShardIds"] = json!({"SS": self.children});
        }
        if let Some((start, end)) = &self.hash_range {
            item["startingHashKey"] = json!({"S": start});
            item["endingHashKey"] = json!({"S": end});
        }
        if let Some((sequence, sub)) = &self.pending_checkpoint {
            item["pendingCheckpoint"] = json!({"S": sequence});
            item["pendingCheckpointSubSequenceNumber"] = json!({"N": sub.to_string()});
        }
        if let Some(state) = &self.pending_checkpoint_state {
            item["pendingCheckpointState"] =
                json!({"B": base64::engine::general_purpose::STANDARD.encode(state)});
        }
        item
    }

    pub fn is_finished(&self) -> bool {
        self.checkpoint == SHARD_END
    }
}

/// How a conditional lease write went.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// The condition failed: someone else changed the lease.
    Lost,
}

fn conditional(result: Result<Value, AwsError>) -> Result<Outcome, AwsError> {
    match result {
        Ok(_) => Ok(Outcome::Done),
        Err(error) if error.is("ConditionalCheckFailedException") => Ok(Outcome::Lost),
        Err(error) => Err(error),
    }
}

/// One application's lease table.
#[derive(Clone)]
pub struct LeaseTable {
    client: AwsClient,
    table: String,
}

impl LeaseTable {
    pub fn new(client: AwsClient, table: &str) -> LeaseTable {
        LeaseTable {
            client,
            table: table.to_owned(),
        }
    }

    /// Creates the table (on-demand, `leaseKey` hash key) unless it exists, and waits for it.
    pub async fn ensure(&self) -> Result<(), AwsError> {
        let created = self
            .client
            .dynamodb(
                "CreateTable",
                &json!({
                    "TableName": self.table,
                    "AttributeDefinitions": [{"AttributeName": "leaseKey", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                }),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(error) if error.is("ResourceInUseException") => {}
            Err(error) => return Err(error),
        }
        for _ in 0..120 {
            let described = self
                .client
                .dynamodb("DescribeTable", &json!({"TableName": self.table}))
                .await?;
            if described
                .pointer("/Table/TableStatus")
                .and_then(Value::as_str)
                == Some("ACTIVE")
            {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(AwsError {
            code: "ResourceNotReady".into(),
            message: format!("lease table {} did not become ACTIVE", self.table),
            status: 0,
        })
    }

    /// Every lease (consistent scan, all pages).
    pub async fn list(&self) -> Result<Vec<Lease>, AwsError> {
        let mut leases = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut request = json!({"TableName": self.table, "ConsistentRead": true});
            if let Some(key) = start.take() {
                request["ExclusiveStartKey"] = key;
            }
            let page = self.client.dynamodb("Scan", &request).await?;
            for item in page
                .get("Items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(lease) = item.as_object().and_then(Lease::from_item) {
                    leases.push(lease);
                }
            }
            match page.get("LastEvaluatedKey") {
                Some(key) => start = Some(key.clone()),
                None => return Ok(leases),
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Lease>, AwsError> {
        let got = self
            .client
            .dynamodb(
                "GetItem",
                &json!({"TableName": self.table, "Key": {"leaseKey": {"S": key}}, "ConsistentRead": true}),
            )
            .await?;
        Ok(got
            .get("Item")
            .and_then(Value::as_object)
            .and_then(Lease::from_item))
    }

    /// Creates a lease unless one exists.
    pub async fn create(&self, lease: &Lease) -> Result<Outcome, AwsError> {
        conditional(
            self.client
                .dynamodb(
                    "PutItem",
                    &json!({
                        "TableName": self.table,
                        "Item": lease.to_item(),
                        "Expected": {"leaseKey": {"Exists": false}},
                    }),
                )
                .await,
        )
    }

    /// A conditional update of a lease that is still as we saw it, with `leaseCounter` + 1;
    /// on success the counter is updated in place.
    async fn update_held(
        &self,
        lease: &mut Lease,
        mut updates: Value,
    ) -> Result<Outcome, AwsError> {
        updates["leaseCounter"] = json!({"Value": {"N": "1"}, "Action": "ADD"});
        let outcome = conditional(
            self.client
                .dynamodb(
                    "UpdateItem",
                    &json!({
                        "TableName": self.table,
                        "Key": {"leaseKey": {"S": lease.key}},
                        "Expected": Self::expect(lease),
                        "AttributeUpdates": updates,
                    }),
                )
                .await,
        )?;
        if let Outcome::Done = outcome {
            lease.counter += 1;
        }
        Ok(outcome)
    }

    /// The condition that the lease is still as we saw it.
    fn expect(lease: &Lease) -> Value {
        let mut expected = json!({"leaseCounter": {"Value": {"N": lease.counter.to_string()}}});
        match &lease.owner {
            Some(owner) => expected["leaseOwner"] = json!({"Value": {"S": owner}}),
            None => expected["leaseOwner"] = json!({"Exists": false}),
        }
        expected
    }

    /// Takes `lease` (as last seen) for `worker`; on success the lease is updated in place.
    pub async fn take(&self, lease: &mut Lease, worker: &str) -> Result<Outcome, AwsError> {
        let switched = lease.owner.as_deref() != Some(worker);
        let mut updates = json!({"leaseOwner": {"Value": {"S": worker}, "Action": "PUT"}});
        if switched {
            updates["ownerSwitchesSinceCheckpoint"] = json!({"Value": {"N": "1"}, "Action": "ADD"});
        }
        let outcome = self.update_held(lease, updates).await?;
        if let Outcome::Done = outcome {
            lease.owner = Some(worker.to_owned());
            if switched {
                lease.owner_switches += 1;
            }
        }
        Ok(outcome)
    }

    /// Renews a held lease (counter + 1, owner unchanged).
    pub async fn renew(&self, lease: &mut Lease) -> Result<Outcome, AwsError> {
        self.update_held(lease, json!({})).await
    }

    /// Gives a held lease up (no owner), so another worker takes it at once.
    pub async fn evict(&self, lease: &mut Lease) -> Result<Outcome, AwsError> {
        let updates = json!({"leaseOwner": {"Action": "DELETE"}});
        let outcome = self.update_held(lease, updates).await?;
        if let Outcome::Done = outcome {
            lease.owner = None;
        }
        Ok(outcome)
    }

    /// Stores a prepared checkpoint (and the application's state) on a held lease, leaving its
    /// checkpoint as it is, as the Java KCL's `prepareCheckpoint` does.
    pub async fn prepare_checkpoint(
        &self,
        lease: &mut Lease,
        sequence: &str,
        sub_sequence: u64,
        state: Option<&[u8]>,
    ) -> Result<Outcome, AwsError> {
        let mut updates = json!({
            "pendingCheckpoint": {"Value": {"S": sequence}, "Action": "PUT"},
            "pendingCheckpointSubSequenceNumber": {"Value": {"N": sub_sequence.to_string()}, "Action": "PUT"},
        });
        updates["pendingCheckpointState"] = match state {
            Some(state) => json!({
                "Value": {"B": base64::engine::general_purpose::STANDARD.encode(state)},
                "Action": "PUT",
            }),
            None => json!({"Action": "DELETE"}),
        };
        let outcome = self.update_held(lease, updates).await?;
        if let Outcome::Done = outcome {
            lease.pending_checkpoint = Some((sequence.to_owned(), sub_sequence));
            lease.pending_checkpoint_state = state.map(<[u8]>::to_vec);
        }
        Ok(outcome)
    }

    /// Stores a checkpoint on a held lease (resets `ownerSwitchesSinceCheckpoint` and removes a
    /// prepared checkpoint).
    pub async fn checkpoint(
        &self,
        lease: &mut Lease,
        sequence: &str,
        sub_sequence: u64,
    ) -> Result<Outcome, AwsError> {
        let updates = json!({
            "checkpoint": {"Value": {"S": sequence}, "Action": "PUT"},
            "checkpointSubSequenceNumber": {"Value": {"N": sub_sequence.to_string()}, "Action": "PUT"},
            "ownerSwitchesSinceCheckpoint": {"Value": {"N": "0"}, "Action": "PUT"},
            "pendingCheckpoint": {"Action": "DELETE"},
            "pendingCheckpointSubSequenceNumber": {"Action": "DELETE"},
            "pendingCheckpointState": {"Action": "DELETE"},
        });
        let outcome = self.update_held(lease, updates).await?;
        if let Outcome::Done = outcome {
            lease.checkpoint = sequence.to_owned();
            lease.checkpoint_sub_sequence = sub_sequence;
            lease.owner_switches = 0;
            lease.pending_checkpoint = None;
            lease.pending_checkpoint_state = None;
        }
        Ok(outcome)
    }

    /// Records a closed shard's children on its lease.
    pub async fn set_children(&self, key: &str, children: &[String]) -> Result<(), AwsError> {
        self.client
            .dynamodb(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": {"leaseKey": {"S": key}},
                    "Expected": {"leaseKey": {"Exists": true, "Value": {"S": key}}},
                    "AttributeUpdates": {"childShardIds": {"Value": {"SS": children}, "Action": "PUT"}},
                }),
            )
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.is("ConditionalCheckFailedException") {
                    Ok(())
                } else {
                    Err(e)
                }
            })
    }

    /// Deletes a lease (a finished parent, once its children have started).
    pub async fn delete(&self, key: &str) -> Result<(), AwsError> {
        self.client
            .dynamodb(
                "DeleteItem",
                &json!({"TableName": self.table, "Key": {"leaseKey": {"S": key}}}),
            )
            .await
            .map(|_| ())
    }
}
