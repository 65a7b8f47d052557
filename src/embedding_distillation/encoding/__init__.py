"""Teacher encoding: one forward pass per batch into Parquet shards."""
