from analytics.clickhouse.sql import TENANT_SETTINGS_TABLE_SQL

operations = [TENANT_SETTINGS_TABLE_SQL()]
