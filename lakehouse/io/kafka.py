"""Kafka I/O: topic creation, a safe producer (acks=all, idempotent) and Spark's Kafka source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from lakehouse.config import RegionConfig, TopicsConfig
from lakehouse.security.kafka_auth import DEVICE, PIPELINE, client_kwargs, spark_options


def ensure_topic(region: RegionConfig, topic: str, topics: TopicsConfig, user: str = PIPELINE) -> bool:
    """Create ``topic`` in the region's Kafka if it is missing; True when it was created (in secure mode as
    ``user``, who may only create the topics the ACLs give it; `lakehouse stack up` creates the standard ones)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=region.kafka.bootstrap, client_id="lakehouse-admin",
                             **client_kwargs(region.kafka, user))  # fmt: skip
    try:
        if topic in admin.list_topics():
            return False
        try:
            configs = {"min.insync.replicas": str(topics.min_insync_replicas)}
            admin.create_topics([NewTopic(topic, num_partitions=topics.partitions,
                                          replication_factor=topics.replication_factor, topic_configs=configs)])  # fmt: skip
        except TopicAlreadyExistsError:
            return False
        return True
    finally:
        admin.close()


def end_offsets(region: RegionConfig, topic: str) -> dict[int, int]:
    """Latest offset of each partition of ``topic`` (what a consumer that has read everything is at)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=region.kafka.bootstrap, client_id="lakehouse-offsets",
                             **client_kwargs(region.kafka, PIPELINE))  # fmt: skip
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: off for tp, off in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def produce(
    region: RegionConfig,
    topic: str,
    records: Iterable[tuple[str | None, bytes]],
    progress_every: int = 0,
    progress: Callable[[str], None] = print,
    user: str = DEVICE,
) -> int:
    """Send (key, raw value) records with acks=all and idempotence; flush; return how many were sent (in secure
    mode as ``user``: devices by default, who may write only the telemetry topic)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=region.kafka.bootstrap,
        client_id="lakehouse-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        **client_kwargs(region.kafka, user),
    )
    sent = 0
    try:
        for key, value in records:
            producer.send(topic, key=key.encode("utf-8") if key is not None else None, value=value)
            sent += 1
            if progress_every and sent % progress_every == 0:
                progress(f"  produced {sent} messages")
        producer.flush()
    finally:
        producer.close()
    return sent


def produce_json(
    region: RegionConfig,
    topic: str,
    records: Iterable[tuple[str, Mapping[str, Any]]],
    progress_every: int = 0,
    progress: Callable[[str], None] = print,
    user: str = DEVICE,
) -> int:
    """Send (key, JSON object) records; see :func:`produce`."""
    encoded = ((k, json.dumps(v, separators=(",", ":")).encode("utf-8")) for k, v in records)
    return produce(region, topic, encoded, progress_every, progress, user)


def read_kafka(
    spark: SparkSession,
    region: RegionConfig,
    topic: str,
    *,
    streaming: bool,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    partition_fetch_bytes: int | None = None,
    max_records_per_task: int | None = None,
) -> DataFrame:
    """Spark's Kafka source on ``topic`` (replayable, failOnDataLoss on); batch or streaming.

    ``partition_fetch_bytes``: the most a fetch request brings of one partition (the consumer's
    ``max.partition.fetch.bytes``; a whole request up to four times that). The consumer's 1 MiB default makes a
    catch-up batch of tens of MiB per partition take dozens of requests: bronze's batch of 200,000 messages took
    ~2.8 s with it and ~2.0 s with 32 MiB (docs/benchmarks.md).

    ``max_records_per_task``: the most records one Spark task reads (the source's ``maxRecordsPerPartition``): a
    Kafka partition's share of a large batch is split into several tasks of at most this many records."""
    reader = (spark.readStream if streaming else spark.read).format("kafka")
    reader = (
        reader.option("kafka.bootstrap.servers", region.kafka.bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("failOnDataLoss", "true")
        .options(**spark_options(region.kafka, PIPELINE))
    )
    if streaming and max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    if partition_fetch_bytes:
        reader = reader.option("kafka.max.partition.fetch.bytes", str(partition_fetch_bytes))
        reader = reader.option("kafka.fetch.max.bytes", str(4 * partition_fetch_bytes))
    if max_records_per_task:
        reader = reader.option("maxRecordsPerPartition", str(max_records_per_task))
    return reader.load()
