"""Import of the canonical sales and customers files (DESIGN §8), CSV and XLSX, from the UI, the API and
``manage.py import_file``: reading (``reader``), column mapping (``columns``), vectorised parsing with a
row-level error report (``parsing``), and the all-or-nothing write (``services``)."""
