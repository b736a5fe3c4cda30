from analytics.clickhouse.sql import CONTACT_DAYS_TABLE_SQL

operations = [CONTACT_DAYS_TABLE_SQL()]
