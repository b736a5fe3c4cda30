from analytics.clickhouse.sql import DATA_VERSIONS_TABLE_SQL

operations = [DATA_VERSIONS_TABLE_SQL()]
