"""`make bench`: the whole job's throughput and memory against a plain DuckDB floor."""
