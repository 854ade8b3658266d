"""The data layer: rows from a DataFrame, a file (DuckDB), Dask or Spark, validated and reduced
to a `ratepool.data.counts.CountData`. It knows nothing of the model.
"""
