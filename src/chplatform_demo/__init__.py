"""Demo data for the chplatform lab: synthetic taxi trips (Parquet) and a titles catalogue (CSV)."""
