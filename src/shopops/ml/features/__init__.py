"""The feature store: a Feast repository defined in code, fed by the lake (batch) and the event log (push).

``service.FeatureService`` is the interface the training and serving code uses; ``model`` holds the
feature definitions and the pure derivations; ``derive`` turns the lake's change history into the
Parquet files of the offline store; ``push`` is the stream worker for real-time features. Feast is
imported lazily (it takes about a second and pulls torch), never by merely importing this package.
"""
