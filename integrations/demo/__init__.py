"""The demo data generator (DESIGN §11): a deterministic, realistic Russian beauty retailer.

``catalog`` holds the shop (stores, staff, assortment, mailing calendar), ``people`` the
customers' contacts, ``timeline`` the calendar of demand, ``model`` the customers' behaviour
(numpy, one customer chunk at a time) and ``services`` writes it through ``integrations.ingest``.
"""
