"""The DynamoDB-compatible lease tables through boto3's `dynamodb` client: tables and indexes,
every attribute type, both condition styles, racing conditional writes, Scan segments, Query on
a global secondary index, durability across kill -9, and DynamoDB's error texts."""

from __future__ import annotations

import threading
from decimal import Decimal

import boto3
import botocore.config
import botocore.exceptions
import pytest

from millrace_testlib import AWS_ENV, REGION


def ddb_client(endpoint: str):
    session = boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=32)
    return session.client("dynamodb", endpoint_url=endpoint, config=config)


@pytest.fixture(scope="module")
def ddb(module_server):
    return ddb_client(module_server.endpoint)


def error_of(fn, *args, **kwargs) -> tuple[str, str, dict]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        fn(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["Error"].get("Message", ""), response


def lease_table(ddb, name: str, gsi: bool = False) -> None:
    kwargs = {}
    definitions = [{"AttributeName": "leaseKey", "AttributeType": "S"}]
    if gsi:
        definitions.append({"AttributeName": "leaseOwner", "AttributeType": "S"})
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "LeaseOwnerToLeaseKeyIndex",
                "KeySchema": [
                    {"AttributeName": "leaseOwner", "KeyType": "HASH"},
                    {"AttributeName": "leaseKey", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=definitions,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        **kwargs,
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})


def test_table_lifecycle_and_texts(ddb):
    lease_table(ddb, "lifecycle", gsi=True)
    table = ddb.describe_table(TableName="lifecycle")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TableArn"] == "arn:aws:dynamodb:us-east-1:000000000000:table/lifecycle" or table[
        "TableArn"
    ].endswith(":table/lifecycle")
    assert table["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"
    assert "lifecycle" in ddb.list_tables()["TableNames"]

    code, message, _ = error_of(
        ddb.create_table,
        TableName="lifecycle",
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert (code, message) == ("ResourceInUseException", "Table already exists: lifecycle")

    code, message, _ = error_of(ddb.describe_table, TableName="nosuchtable")
    assert (code, message) == ("ResourceNotFoundException", "Requested resource not found: Table: nosuchtable not found")
    code, message, _ = error_of(ddb.get_item, TableName="nosuchtable", Key={"k": {"S": "a"}})
    assert (code, message) == ("ResourceNotFoundException", "Requested resource not found")

    code, message, _ = error_of(
        ddb.create_table,
        TableName="badbilling",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    )
    assert code == "ValidationException"
    assert message == (
        "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits "
        "can be specified when BillingMode is PAY_PER_REQUEST"
    )
    code, message, _ = error_of(
        ddb.create_table,
        TableName="baddefs",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}, {"AttributeName": "x", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert code == "ValidationException"
    assert message.startswith("One or more parameter values were invalid: Some AttributeDefinitions are not used.")
    assert "baddefs" not in ddb.list_tables()["TableNames"]

    # Provisioned settings are accepted and reported.
    ddb.create_table(
        TableName="provisioned",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}, {"AttributeName": "r", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
        ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 5},
    )
    described = ddb.describe_table(TableName="provisioned")["Table"]
    assert described["ProvisionedThroughput"]["ReadCapacityUnits"] == 10
    # UpdateTable adds a GSI; UpdateContinuousBackups is accepted.
    ddb.update_table(
        TableName="provisioned",
        AttributeDefinitions=[{"AttributeName": "owner", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "byOwner",
                    "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                }
            }
        ],
    )
    indexes = ddb.describe_table(TableName="provisioned")["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == ["byOwner"]
    backups = ddb.update_continuous_backups(
        TableName="provisioned", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    deleted = ddb.delete_table(TableName="provisioned")["TableDescription"]
    assert deleted["TableStatus"] == "DELETING"
    code, _, _ = error_of(ddb.delete_table, TableName="provisioned")
    assert code == "ResourceNotFoundException"


def test_every_attribute_type_round_trips(ddb):
    lease_table(ddb, "types")
    item = {
        "leaseKey": {"S": "shardId-000000000001"},
        "n": {"N": "00012.500"},
        "big": {"N": "-1.5E+3"},
        "b": {"B": b"\x00\x01\xff"},
        "t": {"BOOL": True},
        "nul": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.50"]},
        "bs": {"BS": [b"x", b"y"]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}]},
        "m": {"M": {"nested": {"M": {"deep": {"BOOL": False}}}}},
    }
    ddb.put_item(TableName="types", Item=item)
    got = ddb.get_item(TableName="types", Key={"leaseKey": {"S": "shardId-000000000001"}}, ConsistentRead=True)["Item"]
    assert got["n"] == {"N": "12.5"}
    assert got["big"] == {"N": "-1500"}
    assert got["b"] == {"B": b"\x00\x01\xff"}
    assert sorted(got["ns"]["NS"]) == ["1", "2.5"]
    assert sorted(got["bs"]["BS"]) == [b"x", b"y"]
    for name in ("t", "nul", "l", "m"):
        assert got[name] == item[name]

    table = boto3.resource(
        "dynamodb",
        endpoint_url=ddb.meta.endpoint_url,
        region_name=REGION,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    ).Table("types")
    assert table.get_item(Key={"leaseKey": "shardId-000000000001"})["Item"]["n"] == Decimal("12.5")

    for bad, expected in [
        ({"N": "12abc"}, "The parameter cannot be converted to a numeric value: 12abc"),
        ({"N": "1" * 39}, "Attempting to store more than 38 significant digits in a Number"),
        ({"N": "1E+126"}, "Number overflow. Attempting to store a number with magnitude larger than supported range"),
        ({"SS": ["a", "a"]}, "One or more parameter values were invalid: Input collection [a, a] contains duplicates."),
    ]:
        code, message, _ = error_of(ddb.put_item, TableName="types", Item={"leaseKey": {"S": "bad"}, "x": bad})
        assert (code, message) == ("ValidationException", expected)
    code, message, _ = error_of(ddb.put_item, TableName="types", Item={"leaseKey": {"N": "1"}})
    assert message == "One or more parameter values were invalid: Type mismatch for key leaseKey expected: S actual: N"
    code, message, _ = error_of(ddb.put_item, TableName="types", Item={"other": {"S": "1"}})
    assert message == "One or more parameter values were invalid: Missing the key leaseKey in the item"
    code, message, _ = error_of(ddb.get_item, TableName="types", Key={"nope": {"S": "1"}})
    assert (code, message) == ("ValidationException", "The provided key element does not match the schema")
    code, message, _ = error_of(ddb.put_item, TableName="types", Item={"leaseKey": {"S": ""}})
    assert message == (
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain "
        "an empty string value. Key: leaseKey"
    )
    code, message, _ = error_of(
        ddb.put_item, TableName="types", Item={"leaseKey": {"S": "big"}, "blob": {"B": b"x" * (400 * 1024)}}
    )
    assert message == "Item size has exceeded the maximum allowed size"
    assert "Item" not in ddb.get_item(TableName="types", Key={"leaseKey": {"S": "bad"}})


def test_expression_style_lease_updates(ddb):
    lease_table(ddb, "expr")
    key = {"leaseKey": {"S": "shardId-000000000000"}}
    ddb.put_item(
        TableName="expr",
        Item={**key, "leaseCounter": {"N": "0"}, "checkpoint": {"S": "TRIM_HORIZON"}},
        ConditionExpression="attribute_not_exists(leaseKey)",
    )
    out = ddb.update_item(
        TableName="expr",
        Key=key,
        UpdateExpression="SET leaseOwner = :w, #c = #c + :one ADD ownerSwitchesSinceCheckpoint :one",
        ConditionExpression="attribute_not_exists(leaseOwner) AND #c = :zero",
        ExpressionAttributeNames={"#c": "leaseCounter"},
        ExpressionAttributeValues={":w": {"S": "worker-1"}, ":one": {"N": "1"}, ":zero": {"N": "0"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert out["leaseCounter"] == {"N": "1"} and out["leaseOwner"] == {"S": "worker-1"}
    assert out["ownerSwitchesSinceCheckpoint"] == {"N": "1"}

    updated = ddb.update_item(
        TableName="expr",
        Key=key,
        UpdateExpression="SET checkpoint = :c, tags = :t REMOVE ownerSwitchesSinceCheckpoint",
        ExpressionAttributeValues={":c": {"S": "49590338271490256608559692538361571095921575989136588898"}, ":t": {"SS": ["a", "b"]}},
        ReturnValues="UPDATED_OLD",
    )["Attributes"]
    assert updated == {"checkpoint": {"S": "TRIM_HORIZON"}, "ownerSwitchesSinceCheckpoint": {"N": "1"}}
    ddb.update_item(
        TableName="expr", Key=key, UpdateExpression="DELETE tags :a", ExpressionAttributeValues={":a": {"SS": ["a"]}}
    )
    item = ddb.get_item(TableName="expr", Key=key, ProjectionExpression="tags, leaseOwner")["Item"]
    assert item == {"tags": {"SS": ["b"]}, "leaseOwner": {"S": "worker-1"}}

    code, message, response = error_of(
        ddb.update_item,
        TableName="expr",
        Key=key,
        UpdateExpression="SET leaseOwner = :w",
        ConditionExpression="leaseOwner = :other",
        ExpressionAttributeValues={":w": {"S": "thief"}, ":other": {"S": "worker-9"}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    assert (code, message) == ("ConditionalCheckFailedException", "The conditional request failed")
    assert response["Item"]["leaseOwner"] == {"S": "worker-1"}

    # Expression errors, in DynamoDB's words; none of them changes the item.
    cases = [
        (
            dict(UpdateExpression="SET leaseOwner = :w", ExpressionAttributeValues={":w": {"S": "x"}, ":unused": {"S": "y"}}),
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}",
        ),
        (
            dict(UpdateExpression="SET leaseOwner = :nope"),
            "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :nope",
        ),
        (
            dict(UpdateExpression="SET status = :w", ExpressionAttributeValues={":w": {"S": "x"}}),
            "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: status",
        ),
        (
            dict(UpdateExpression="SET leaseKey = :w", ExpressionAttributeValues={":w": {"S": "x"}}),
            "One or more parameter values were invalid: Cannot update attribute leaseKey. This attribute is part of the key",
        ),
        (
            dict(
                UpdateExpression="SET leaseOwner = :w",
                Expected={"leaseOwner": {"Value": {"S": "worker-1"}}},
                ExpressionAttributeValues={":w": {"S": "x"}},
            ),
            "Can not use both expression and non-expression parameters in the same request: "
            "Non-expression parameters: {Expected} Expression parameters: {UpdateExpression}",
        ),
        (
            dict(UpdateExpression="SET leaseOwner = :w, leaseOwner = :w", ExpressionAttributeValues={":w": {"S": "x"}}),
            "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of "
            "these paths; path one: [leaseOwner], path two: [leaseOwner]",
        ),
        (
            dict(UpdateExpression="SET leaseOwner = ", ExpressionAttributeValues={":w": {"S": "x"}}),
            'Invalid UpdateExpression: Syntax error; token: "<EOF>", near: "="',
        ),
        (
            dict(UpdateExpression="ADD leaseOwner :one", ExpressionAttributeValues={":one": {"N": "1"}}),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: ADD, operand type: STRING",
        ),
    ]
    for kwargs, expected in cases:
        code, message, _ = error_of(ddb.update_item, TableName="expr", Key=key, **kwargs)
        assert (code, message) == ("ValidationException", expected), kwargs
    assert ddb.get_item(TableName="expr", Key=key)["Item"]["leaseOwner"] == {"S": "worker-1"}


def test_legacy_style_the_java_kcl_uses(ddb):
    lease_table(ddb, "legacy")
    key = {"leaseKey": {"S": "shardId-000000000007"}}
    ddb.put_item(
        TableName="legacy",
        Item={**key, "leaseCounter": {"N": "0"}, "checkpoint": {"S": "TRIM_HORIZON"}},
        Expected={"leaseKey": {"Exists": False}},
    )
    code, _, _ = error_of(
        ddb.put_item, TableName="legacy", Item={**key, "leaseCounter": {"N": "0"}}, Expected={"leaseKey": {"Exists": False}}
    )
    assert code == "ConditionalCheckFailedException"
    # Take the lease: counter must still be 0, then renew twice.
    ddb.update_item(
        TableName="legacy",
        Key=key,
        Expected={"leaseCounter": {"Value": {"N": "0"}}, "leaseOwner": {"Exists": False}},
        AttributeUpdates={
            "leaseOwner": {"Value": {"S": "w1"}, "Action": "PUT"},
            "leaseCounter": {"Value": {"N": "1"}, "Action": "ADD"},
        },
    )
    for expected_counter in ("1", "2"):
        ddb.update_item(
            TableName="legacy",
            Key=key,
            Expected={"leaseCounter": {"Value": {"N": expected_counter}}, "leaseOwner": {"Value": {"S": "w1"}}},
            AttributeUpdates={"leaseCounter": {"Value": {"N": "1"}, "Action": "ADD"}},
        )
    code, _, _ = error_of(
        ddb.update_item,
        TableName="legacy",
        Key=key,
        Expected={"leaseCounter": {"Value": {"N": "1"}}},
        AttributeUpdates={"leaseCounter": {"Value": {"N": "1"}, "Action": "ADD"}},
    )
    assert code == "ConditionalCheckFailedException"
    ddb.update_item(
        TableName="legacy",
        Key=key,
        Expected={"leaseCounter": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "3"}]}},
        AttributeUpdates={"leaseOwner": {"Action": "DELETE"}},
    )
    item = ddb.get_item(TableName="legacy", Key=key, AttributesToGet=["leaseCounter", "leaseOwner"])["Item"]
    assert item == {"leaseCounter": {"N": "3"}}
    code, message, _ = error_of(
        ddb.delete_item, TableName="legacy", Key=key, Expected={"leaseOwner": {"Exists": True}}
    )
    assert code == "ValidationException"
    assert message.endswith("Value must be provided when Exists is true for Attribute: leaseOwner")
    ddb.delete_item(TableName="legacy", Key=key, Expected={"leaseOwner": {"Exists": False}})
    assert "Item" not in ddb.get_item(TableName="legacy", Key=key)


def test_racing_conditional_writes_have_one_winner(module_server):
    ddb = ddb_client(module_server.endpoint)
    lease_table(ddb, "race")
    key = {"leaseKey": {"S": "shardId-000000000003"}}
    workers = 12

    def race(action) -> list[str]:
        outcomes: list[str] = [""] * workers
        barrier = threading.Barrier(workers)

        def attempt(index: int) -> None:
            client = ddb_client(module_server.endpoint)
            barrier.wait()
            try:
                action(client, index)
                outcomes[index] = "won"
            except botocore.exceptions.ClientError as error:
                outcomes[index] = error.response["Error"]["Code"]

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes

    created = race(
        lambda c, i: c.put_item(
            TableName="race",
            Item={**key, "leaseOwner": {"S": f"w{i}"}, "leaseCounter": {"N": "0"}},
            ConditionExpression="attribute_not_exists(leaseKey)",
        )
    )
    assert created.count("won") == 1
    assert created.count("ConditionalCheckFailedException") == workers - 1
    for round_number in range(3):
        taken = race(
            lambda c, i: c.update_item(
                TableName="race",
                Key=key,
                UpdateExpression="SET leaseOwner = :me ADD leaseCounter :one",
                ConditionExpression="leaseCounter = :seen",
                ExpressionAttributeValues={":me": {"S": f"w{i}"}, ":one": {"N": "1"}, ":seen": {"N": str(round_number)}},
            )
        )
        assert taken.count("won") == 1, taken
        winner = taken.index("won")
        item = ddb.get_item(TableName="race", Key=key, ConsistentRead=True)["Item"]
        assert item["leaseOwner"] == {"S": f"w{winner}"}
        assert item["leaseCounter"] == {"N": str(round_number + 1)}


def test_scan_segments_paging_and_filters(ddb):
    lease_table(ddb, "scan")
    for start in range(0, 60, 20):
        ddb.batch_write_item(
            RequestItems={
                "scan": [
                    {"PutRequest": {"Item": {"leaseKey": {"S": f"shardId-{i:012d}"}, "n": {"N": str(i)}}}}
                    for i in range(start, start + 20)
                ]
            }
        )
    everything = set()
    for segment in range(4):
        seen = []
        kwargs = {}
        while True:
            page = ddb.scan(TableName="scan", Segment=segment, TotalSegments=4, Limit=7, **kwargs)
            seen += [item["leaseKey"]["S"] for item in page["Items"]]
            assert page["ScannedCount"] <= 7
            if "LastEvaluatedKey" not in page:
                break
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        assert not everything & set(seen)
        everything |= set(seen)
    assert len(everything) == 60
    filtered = ddb.scan(
        TableName="scan", FilterExpression="n >= :low AND n < :high", ExpressionAttributeValues={":low": {"N": "10"}, ":high": {"N": "15"}}
    )
    assert filtered["Count"] == 5 and filtered["ScannedCount"] == 60
    legacy = ddb.scan(TableName="scan", ScanFilter={"n": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "0"}, {"N": "2"}]}})
    assert legacy["Count"] == 3
    counted = ddb.scan(TableName="scan", Select="COUNT")
    assert counted["Count"] == 60 and "Items" not in counted
    code, message, _ = error_of(ddb.scan, TableName="scan", Segment=4, TotalSegments=4)
    assert message == (
        "The Segment parameter is zero-based and must be less than parameter TotalSegments: "
        "Segment: 4 is not less than TotalSegments: 4"
    )
    code, message, _ = error_of(ddb.scan, TableName="scan", TotalSegments=4)
    assert message == "The Segment parameter is required but was not present in the request when parameter TotalSegments is present"
    got = ddb.batch_get_item(
        RequestItems={"scan": {"Keys": [{"leaseKey": {"S": "shardId-000000000001"}}, {"leaseKey": {"S": "missing"}}]}}
    )
    assert [i["n"] for i in got["Responses"]["scan"]] == [{"N": "1"}]


def test_query_on_table_and_gsi(ddb):
    lease_table(ddb, "query", gsi=True)
    for i in range(10):
        item = {"leaseKey": {"S": f"shardId-{i:012d}"}, "checkpoint": {"S": "LATEST"}}
        if i % 3 != 2:
            item["leaseOwner"] = {"S": f"worker-{i % 3}"}
        ddb.put_item(TableName="query", Item=item)
    owned = ddb.query(
        TableName="query",
        IndexName="LeaseOwnerToLeaseKeyIndex",
        KeyConditionExpression="leaseOwner = :o",
        ExpressionAttributeValues={":o": {"S": "worker-1"}},
    )
    keys = [item["leaseKey"]["S"] for item in owned["Items"]]
    assert keys == [f"shardId-{i:012d}" for i in (1, 4, 7)]
    # KEYS_ONLY: the index holds the keys only.
    assert set(owned["Items"][0]) == {"leaseKey", "leaseOwner"}
    backwards = ddb.query(
        TableName="query",
        IndexName="LeaseOwnerToLeaseKeyIndex",
        KeyConditions={
            "leaseOwner": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "worker-0"}]},
            "leaseKey": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "shardId-0000000000"}]},
        },
        ScanIndexForward=False,
        Limit=2,
    )
    assert [i["leaseKey"]["S"] for i in backwards["Items"]] == ["shardId-000000000009", "shardId-000000000006"]
    assert backwards["LastEvaluatedKey"]["leaseOwner"] == {"S": "worker-0"}
    rest = ddb.query(
        TableName="query",
        IndexName="LeaseOwnerToLeaseKeyIndex",
        KeyConditionExpression="leaseOwner = :o",
        ExpressionAttributeValues={":o": {"S": "worker-0"}},
        ScanIndexForward=False,
        ExclusiveStartKey=backwards["LastEvaluatedKey"],
    )
    assert [i["leaseKey"]["S"] for i in rest["Items"]] == ["shardId-000000000003", "shardId-000000000000"]
    direct = ddb.query(
        TableName="query",
        KeyConditionExpression="leaseKey = :k",
        ExpressionAttributeValues={":k": {"S": "shardId-000000000005"}},
        ConsistentRead=True,
    )
    assert direct["Count"] == 1 and direct["Items"][0]["checkpoint"] == {"S": "LATEST"}
    code, message, _ = error_of(
        ddb.query,
        TableName="query",
        IndexName="LeaseOwnerToLeaseKeyIndex",
        KeyConditionExpression="leaseOwner = :o",
        ExpressionAttributeValues={":o": {"S": "w"}},
        ConsistentRead=True,
    )
    assert message == "Consistent reads are not supported on global secondary indexes"
    code, message, _ = error_of(
        ddb.query, TableName="query", IndexName="nope", KeyConditionExpression="a = :o", ExpressionAttributeValues={":o": {"S": "w"}}
    )
    assert message == "The table does not have the specified index: nope"
    code, message, _ = error_of(
        ddb.query, TableName="query", KeyConditionExpression="checkpoint = :o", ExpressionAttributeValues={":o": {"S": "w"}}
    )
    assert code == "ValidationException"
    # An index key of the wrong type is refused and changes nothing.
    code, message, _ = error_of(ddb.put_item, TableName="query", Item={"leaseKey": {"S": "x"}, "leaseOwner": {"N": "1"}})
    assert message == (
        "One or more parameter values were invalid: Type mismatch for Index Key leaseOwner Expected: S Actual: N "
        "IndexName: LeaseOwnerToLeaseKeyIndex"
    )


def test_acknowledged_writes_survive_kill9(server_factory):
    server = server_factory(name="durable")
    ddb = ddb_client(server.endpoint)
    lease_table(ddb, "durable", gsi=True)
    for i in range(20):
        ddb.put_item(TableName="durable", Item={"leaseKey": {"S": f"k{i}"}, "leaseOwner": {"S": "w"}, "c": {"N": str(i)}})
    ddb.delete_item(TableName="durable", Key={"leaseKey": {"S": "k0"}})
    server.restart(kill=True)
    ddb = ddb_client(server.endpoint)
    table = ddb.describe_table(TableName="durable")["Table"]
    assert table["ItemCount"] == 19
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "LeaseOwnerToLeaseKeyIndex"
    assert ddb.get_item(TableName="durable", Key={"leaseKey": {"S": "k7"}})["Item"]["c"] == {"N": "7"}
    assert "Item" not in ddb.get_item(TableName="durable", Key={"leaseKey": {"S": "k0"}})


def test_enforce_mode_authorizes_per_table(server_factory):
    """Under --auth enforce a user may touch only the tables its policy names; a denied request
    changes nothing."""
    import test_auth

    server = server_factory(args=test_auth.ENFORCE_ARGS, name="ddb-enforce")
    root = test_auth.client(server, "dynamodb", test_auth.ROOT_KEY, test_auth.ROOT_SECRET)
    lease_table(root, "allowed")
    lease_table(root, "forbidden")
    arn = f"arn:aws:dynamodb:{REGION}:{test_auth.ACCOUNT}:table/allowed"
    key, secret = test_auth.make_user(
        server, "lease-worker", test_auth.allow(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"], [arn, f"{arn}/index/*"])
    )
    worker = test_auth.client(server, "dynamodb", key, secret)
    worker.put_item(TableName="allowed", Item={"leaseKey": {"S": "s1"}})
    assert worker.get_item(TableName="allowed", Key={"leaseKey": {"S": "s1"}})["Item"]
    code, message, _ = error_of(worker.put_item, TableName="forbidden", Item={"leaseKey": {"S": "s1"}})
    assert code == "AccessDeniedException"
    assert "dynamodb:PutItem" in message and "table/forbidden" in message
    code, _, _ = error_of(worker.delete_item, TableName="allowed", Key={"leaseKey": {"S": "s1"}})
    assert code == "AccessDeniedException"
    assert "Item" not in root.get_item(TableName="forbidden", Key={"leaseKey": {"S": "s1"}})
    assert root.get_item(TableName="allowed", Key={"leaseKey": {"S": "s1"}})["Item"]
