"""The domain: plain functions and classes over a SQLAlchemy Session."""
