"""Batch scoring of news corpora (the `stance-watch` CLI): inputs, outputs, Spark, time series."""
