from analytics.clickhouse.sql import CUSTOMER_FLOWS_TABLE_SQL

operations = [CUSTOMER_FLOWS_TABLE_SQL()]
