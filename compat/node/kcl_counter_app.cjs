#!/usr/bin/env node
// A record processor on the unmodified `aws-kcl` npm package (its multi-language side), run by
// `millrace kcl` in compat/python/test_kcl_daemon.py. It logs every record to stderr in the same
// form as the amazon_kclpy sample, checkpoints at the last record of each batch, and at SHARD_END.
'use strict';

const kcl = require('aws-kcl');

function log(line) {
  process.stderr.write(line + '\n');
}

const processor = {
  shardId: null,

  initialize(input, done) {
    this.shardId = input.shardId;
    done();
  },

  processRecords(input, done) {
    const records = (input && input.records) || [];
    for (const record of records) {
      const size = Buffer.from(record.data, 'base64').length;
      log(`Record (Partition Key: ${record.partitionKey}, Sequence Number: ${record.sequenceNumber}, Data Size: ${size}`);
    }
    if (records.length === 0) {
      done();
      return;
    }
    const last = records[records.length - 1].sequenceNumber;
    input.checkpointer.checkpoint(last, (err) => {
      if (err) {
        log(`NODE checkpoint error ${err}`);
      }
      done();
    });
  },

  leaseLost(input, done) {
    log(`NODE lease lost ${this.shardId}`);
    done();
  },

  shardEnded(input, done) {
    input.checkpointer.checkpoint((err) => {
      log(`NODE shard ended ${this.shardId} error=${err || 'none'}`);
      done();
    });
  },

  shutdownRequested(input, done) {
    input.checkpointer.checkpoint((err) => {
      log(`NODE shutdown requested ${this.shardId} error=${err || 'none'}`);
      done();
    });
  },
};

kcl(processor).run();
