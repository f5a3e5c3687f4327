"""The local stack: Kafka (KRaft), HDFS and MLflow as plain loopback processes, one set per region."""
