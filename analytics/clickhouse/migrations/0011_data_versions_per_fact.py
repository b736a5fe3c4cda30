from analytics.clickhouse.sql import DATA_VERSIONS_PER_FACT_SQL

operations = [DATA_VERSIONS_PER_FACT_SQL()]
