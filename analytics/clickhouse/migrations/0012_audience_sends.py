from analytics.clickhouse.sql import AUDIENCE_SENDS_TABLE_SQL

operations = [AUDIENCE_SENDS_TABLE_SQL()]
