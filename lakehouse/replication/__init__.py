"""Cross-region disaster recovery: table replication on Delta's log protocol, its state, verification,
region failover and failback (docs/dr.md)."""
