"""Database access below every app: the SQL Parley writes by hand (``database.sql``)."""
