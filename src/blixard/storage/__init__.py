"""Storage: one Store protocol, drivers per database, SQL in .sql files."""
